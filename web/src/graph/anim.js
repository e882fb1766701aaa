/*
 * graph/anim.js - an overlay canvas over the graph for what cytoscape does not draw itself:
 * the mTLS lock on edges (drawn whenever the graph renders) and the traffic animation (dots
 * moving from source to target, more and faster with the edge's rate, red for its error
 * share). One requestAnimationFrame loop, running only while the animation is on and the tab
 * is visible; with 600 edges a frame is a few hundred arcs on one canvas.
 */
import {COLORS} from './style.js';

/* The lock shows when at least this share of an edge's traffic was mutual TLS. */
export const MTLS_LOCK_PERCENT = 95;
export const LOCK_MIN_ZOOM = 0.45;

function num(s) {
    const v = parseFloat(s);
    return Number.isFinite(v) ? v : 0;
}

/* Dots on an edge for a rate (requests/s, or KiB/s for TCP): 1 at a trickle, 6 at most. */
export function dotCount(rate) {
    return Math.max(1, Math.min(6, Math.round(1 + Math.log10(1 + rate) * 2)));
}

function drawLock(ctx, x, y, s) {
    ctx.fillStyle = '#ffffff';
    ctx.strokeStyle = '#4a5568';
    ctx.lineWidth = Math.max(1, s / 6);
    ctx.beginPath();
    ctx.arc(x, y - s * 0.35, s * 0.32, Math.PI, 0);
    ctx.stroke();
    ctx.beginPath();
    ctx.rect(x - s * 0.5, y - s * 0.35, s, s * 0.75);
    ctx.fill();
    ctx.stroke();
}

/* overlay(cy, container) -> {setOptions({mtls, animation}), destroy()} */
export function createOverlay(cy, container) {
    const canvas = document.createElement('canvas');
    canvas.className = 'graph-overlay';
    canvas.setAttribute('aria-hidden', 'true');
    container.append(canvas);
    const ctx = canvas.getContext('2d');
    let opts = {mtls: true, animation: false};
    let raf = 0;
    let width = 0;
    let height = 0;

    function resize() {
        const dpr = window.devicePixelRatio || 1;
        width = container.clientWidth;
        height = container.clientHeight;
        canvas.width = Math.round(width * dpr);
        canvas.height = Math.round(height * dpr);
        canvas.style.width = `${width}px`;
        canvas.style.height = `${height}px`;
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        draw(performance.now());
    }

    function draw(now) {
        ctx.clearRect(0, 0, width, height);
        if (!opts.mtls && !opts.animation) {
            return;
        }
        const zoom = cy.zoom();
        const pan = cy.pan();
        const lockSize = Math.max(6, Math.min(12, 9 * zoom));
        /* Locks smaller than this zoom would be specks: the edges are lines by then. */
        const locks = opts.mtls && zoom >= LOCK_MIN_ZOOM;
        cy.edges().forEach((e) => {
            const d = e.data();
            const lock = locks && num(d.isMTLS) >= MTLS_LOCK_PERCENT;
            /* Endpoints cost cytoscape a projection each: only for edges that get drawn on. */
            if ((!lock && !opts.animation) || e.source().hasClass('gone') || e.target().hasClass('gone')) {
                return;
            }
            const a = e.sourceEndpoint();
            const b = e.targetEndpoint();
            const ax = a.x * zoom + pan.x;
            const ay = a.y * zoom + pan.y;
            const bx = b.x * zoom + pan.x;
            const by = b.y * zoom + pan.y;
            if (lock) {
                /* Just before the label in the middle of the edge (its width estimated from
                 * its length in characters of the 10 px label font). */
                const len = Math.hypot(bx - ax, by - ay) || 1;
                const label = String(d._label || '');
                const back = label ? (label.length * 2.9 + 9) * zoom : 0;
                const f = Math.max(0.08, 0.5 - back / len);
                drawLock(ctx, ax + (bx - ax) * f, ay + (by - ay) * f, lockSize);
            }
            if (!opts.animation) {
                return;
            }
            const t = d.traffic || {};
            const tcp = t.protocol === 'tcp';
            const rate = tcp ? num(t.rates && t.rates.tcp) / 1024 : num(t.rates && t.rates.http);
            const n = dotCount(rate);
            const err = tcp ? 0 : num(t.rates && t.rates.httpPercentErr) / 100;
            const red = err > 0 ? Math.max(1, Math.round(n * err)) : 0;
            /* Edges cross in about 2.5 s at a trickle and 1 s when busy. */
            const speed = 0.4 + Math.min(0.6, Math.log10(1 + rate) * 0.3);
            const phase = (now / 1000) * speed;
            for (let i = 0; i < n; i++) {
                const f = (phase + i / n) % 1;
                ctx.beginPath();
                ctx.fillStyle = i < red ? COLORS.failure : tcp ? COLORS.tcp : '#2f6f3a';
                const radius = Math.max(1.5, 2.6 * Math.min(zoom, 1.5));
                ctx.arc(ax + (bx - ax) * f, ay + (by - ay) * f, radius, 0, 2 * Math.PI);
                ctx.fill();
            }
        });
    }

    function frame(now) {
        raf = 0;
        draw(now);
        if (opts.animation && !document.hidden) {
            raf = requestAnimationFrame(frame);
        }
    }

    function kick() {
        if (!raf) {
            raf = requestAnimationFrame(frame);
        }
    }

    const onRender = () => {
        if (!opts.animation) {
            kick();
        }
    };
    const onVisibility = () => {
        if (!document.hidden && opts.animation) {
            kick();
        }
    };
    cy.on('render', onRender);
    document.addEventListener('visibilitychange', onVisibility);
    const ro = new ResizeObserver(resize);
    ro.observe(container);

    return {
        setOptions(o) {
            opts = {...opts, ...o};
            kick();
        },
        destroy() {
            if (raf) {
                cancelAnimationFrame(raf);
            }
            raf = 0;
            ro.disconnect();
            cy.removeListener('render', onRender);
            document.removeEventListener('visibilitychange', onVisibility);
            canvas.remove();
        },
    };
}
