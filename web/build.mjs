/*
 * build.mjs - the one build of the web UI: esbuild bundles web/src/app.js (ESM, minified) and
 * the CSS it imports into content-hashed files, copies index.html with its references rewritten
 * to those names, and writes manifest.json. With --embed it also writes the C source that
 * compiles the same files into the weft binary (collector/col_ui.h's col_ui_assets table: each
 * file gzip -9, its content type, a strong ETag and its size).
 *
 *   node web/build.mjs --outdir DIR [--embed FILE.c] [--watch] [--sourcemap]
 *
 * Deterministic: the same sources give the same bytes (esbuild's output and hashes depend on
 * the input only; gzip headers carry no time or name), so a rebuild that changed nothing
 * changes no file and the binary's assets are reproducible. --watch rebuilds on every change
 * (the development loop, with `weft collector --ui-dir DIR`); --sourcemap adds linked source
 * maps, which the embedded build leaves out.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import zlib from 'node:zlib';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.join(here, 'src');

/* Extensions the collector serves, with the Content-Type it sends (col_ui.c knows the same
 * table for --ui-dir). Anything else in the output is an error: it would be served wrongly. */
const TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.svg': 'image/svg+xml',
    '.json': 'application/json',
    '.woff2': 'font/woff2',
    '.png': 'image/png',
    '.map': 'application/json',
};

/* Files of web/src copied beside the bundle under a hashed name, and referenced by that name
 * from index.html (href="favicon.svg" -> href="favicon-<hash>.svg"). */
const STATIC = ['favicon.svg'];

function usage(msg) {
    if (msg) {
        console.error(`build.mjs: ${msg}`);
    }
    console.error('usage: node web/build.mjs --outdir DIR [--embed FILE.c] [--watch] [--sourcemap]');
    process.exit(2);
}

function parseArgs(argv) {
    const o = {outdir: null, embed: null, watch: false, sourcemap: false};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--outdir' || a === '--embed') {
            if (i + 1 >= argv.length) {
                usage(`${a} needs a value`);
            }
            o[a.slice(2)] = path.resolve(argv[++i]);
        } else if (a === '--watch') {
            o.watch = true;
        } else if (a === '--sourcemap') {
            o.sourcemap = true;
        } else {
            usage(`unknown argument ${a}`);
        }
    }
    if (!o.outdir) {
        usage('--outdir is required');
    }
    return o;
}

function sha256(buf) {
    return crypto.createHash('sha256').update(buf).digest('hex');
}

/* esbuild's own hash alphabet is not needed here: 8 hex digits of the content's SHA-256 name a
 * copied file as uniquely as the bundle's names do. */
function hashedName(file, bytes) {
    const ext = path.extname(file);
    return `${path.basename(file, ext)}-${sha256(bytes).slice(0, 8).toUpperCase()}${ext}`;
}

/* Write only when the bytes differ, so that an unchanged file keeps its mtime and a watcher
 * (or ninja) sees no change. */
function writeIfChanged(file, bytes) {
    try {
        if (fs.readFileSync(file).equals(bytes)) {
            return;
        }
    } catch (e) {
        /* absent: write it */
    }
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
}

/* From esbuild's metafile and the outputs it wrote: {js, css, files: [names]}. */
function bundleOutputs(metafile, outdir) {
    const out = {js: null, css: null, files: []};
    for (const [p, info] of Object.entries(metafile.outputs)) {
        const name = path.relative(outdir, path.resolve(p));
        out.files.push(name);
        if (info.entryPoint && name.endsWith('.js')) {
            out.js = name;
            if (info.cssBundle) {
                out.css = path.relative(outdir, path.resolve(info.cssBundle));
            }
        }
    }
    if (!out.js) {
        throw new Error('esbuild produced no entry point bundle');
    }
    return out;
}

/* index.html with app.js, app.css and the static files under their hashed names. A reference
 * index.html does not make is an error, not a page that silently loads nothing. */
function rewriteIndex(html, names) {
    let s = html;
    for (const [plain, hashed] of Object.entries(names)) {
        const re = new RegExp(`(\\s(?:src|href)=")${plain.replace('.', '\\.')}(")`, 'g');
        if (!re.test(s)) {
            throw new Error(`index.html does not reference ${plain}`);
        }
        s = s.replace(re, `$1${hashed}$2`);
    }
    return s;
}

/* Everything after esbuild has written the bundle: the static files, index.html, the
 * manifest, the removal of files an earlier build left, and the C source. */
function finish(o, bundle) {
    const names = {'app.js': bundle.js};
    if (bundle.css) {
        names['app.css'] = bundle.css;
    }
    const files = [...bundle.files];
    for (const f of STATIC) {
        const bytes = fs.readFileSync(path.join(SRC, f));
        const name = hashedName(f, bytes);
        writeIfChanged(path.join(o.outdir, name), bytes);
        names[f] = name;
        files.push(name);
    }
    const html = rewriteIndex(fs.readFileSync(path.join(SRC, 'index.html'), 'utf8'), names);
    writeIfChanged(path.join(o.outdir, 'index.html'), Buffer.from(html));
    files.push('index.html');
    files.sort();
    for (const f of files) {
        if (!TYPES[path.extname(f)]) {
            throw new Error(`${f}: no content type for its extension (add it to TYPES and col_ui.c)`);
        }
    }

    const manifestPath = path.join(o.outdir, 'manifest.json');
    let previous = [];
    try {
        previous = JSON.parse(fs.readFileSync(manifestPath, 'utf8')).files.map((f) => f.name);
    } catch (e) {
        /* first build into this directory */
    }
    for (const old of previous) {
        if (!files.includes(old) && !old.includes('/') && old !== 'manifest.json') {
            fs.rmSync(path.join(o.outdir, old), {force: true});
        }
    }
    const entries = files.map((name) => {
        const bytes = fs.readFileSync(path.join(o.outdir, name));
        return {name, type: TYPES[path.extname(name)], size: bytes.length, sha256: sha256(bytes)};
    });
    const manifest = {entries: names, files: entries};
    writeIfChanged(manifestPath, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    if (o.embed) {
        writeIfChanged(o.embed, Buffer.from(embedSource(o.outdir, entries)));
    }
    const total = entries.reduce((n, e) => n + e.size, 0);
    console.log(`web: ${entries.length} files, ${total} bytes in ${o.outdir}`);
}

/* A file's bytes as C string-literal lines (octal escapes only where needed; a digit after an
 * escape is escaped too, so that it is not read as part of it). */
function cBytes(buf) {
    const lines = [];
    let line = '';
    let prevEscaped = false;
    for (const b of buf) {
        let c;
        const isDigit = b >= 0x30 && b <= 0x39;
        if (b === 0x22 || b === 0x5c) {
            c = '\\' + String.fromCharCode(b);
            prevEscaped = false;
        } else if (b >= 0x20 && b < 0x7f && b !== 0x3f && !(prevEscaped && isDigit)) {
            /* '?' is escaped as well: trigraphs. */
            c = String.fromCharCode(b);
            prevEscaped = false;
        } else {
            c = '\\' + b.toString(8);
            prevEscaped = true;
        }
        line += c;
        if (line.length >= 96) {
            lines.push(`    "${line}"`);
            line = '';
            prevEscaped = false;
        }
    }
    if (line.length > 0 || lines.length === 0) {
        lines.push(`    "${line}"`);
    }
    return lines.join('\n');
}

function embedSource(outdir, entries) {
    const parts = [
        '/*',
        ' * web_assets.c - generated by web/build.mjs from the bundled web UI: do not edit.',
        ' * Each file gzip -9; col_ui.c serves them.',
        ' */',
        '#include "col_ui.h"',
        '',
    ];
    const rows = [];
    entries.forEach((e, i) => {
        const raw = fs.readFileSync(path.join(outdir, e.name));
        const gz = zlib.gzipSync(raw, {level: 9});
        parts.push(`static const char asset_${i}[] =\n${cBytes(gz)};`);
        parts.push('');
        /* Hashed names never change content: they may be cached for good. */
        const immutable = e.name !== 'index.html';
        rows.push(`    {"${e.name}", "${e.type}", "\\"${e.sha256.slice(0, 32)}\\"", ` +
                  `(const unsigned char *)asset_${i}, sizeof(asset_${i}) - 1, ${e.size}, ` +
                  `${immutable ? 'true' : 'false'}},`);
    });
    parts.push('const col_ui_asset_t col_ui_assets[] = {');
    parts.push(...rows);
    parts.push('};');
    parts.push(`const size_t col_ui_nassets = ${entries.length};`);
    parts.push('');
    return parts.join('\n');
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    let esbuild;
    try {
        esbuild = await import('esbuild');
    } catch (e) {
        console.error('build.mjs: esbuild is not installed in web/node_modules: the CMake build installs it ' +
                      '(cmake/weft_web_deps.cmake), or run `npm ci` in web/');
        process.exit(1);
    }
    fs.mkdirSync(o.outdir, {recursive: true});
    if (o.embed) {
        fs.mkdirSync(path.dirname(o.embed), {recursive: true});
    }
    const options = {
        entryPoints: [path.join(SRC, 'app.js')],
        bundle: true,
        format: 'esm',
        target: ['es2020'],
        minify: true,
        sourcemap: o.sourcemap ? 'linked' : false,
        legalComments: 'none',
        outdir: o.outdir,
        entryNames: '[name]-[hash]',
        assetNames: '[name]-[hash]',
        loader: {'.svg': 'file', '.woff2': 'file', '.png': 'file'},
        metafile: true,
        write: true,
        logLevel: 'warning',
        absWorkingDir: here,
    };
    if (!o.watch) {
        const result = await esbuild.build(options);
        finish(o, bundleOutputs(result.metafile, o.outdir));
        return;
    }
    const report = {
        name: 'weft-finish',
        setup(build) {
            build.onEnd((result) => {
                if (result.errors.length > 0) {
                    return;
                }
                try {
                    finish(o, bundleOutputs(result.metafile, o.outdir));
                } catch (e) {
                    console.error(`build.mjs: ${e.message}`);
                }
            });
        },
    };
    const ctx = await esbuild.context({...options, plugins: [report]});
    await ctx.watch();
    /* index.html and the static files are not part of esbuild's graph: watch them too. */
    fs.watch(SRC, (event, file) => {
        if (file === 'index.html' || STATIC.includes(file)) {
            ctx.rebuild().catch((e) => console.error(`build.mjs: ${e.message}`));
        }
    });
    console.log(`web: watching ${SRC}, writing ${o.outdir}`);
}

main().catch((e) => {
    console.error(`build.mjs: ${e.message}`);
    process.exit(1);
});
