# weft_web.cmake - the web UI in the build: web/node_modules installed as web/package-lock.json
# pins it, when the lock file changed (cmake/weft_web_deps.cmake: from the npm registry, without
# npm), then web/build.mjs bundles web/src into ${CMAKE_BINARY_DIR}/web and writes web_assets.c
# (every file gzip -9, with its type, ETag and size), which is compiled into weft_collector
# (collector/col_ui.c serves it). Rebuilt when a file of web/src, package.json, the lock file or
# build.mjs changes.
find_program(WEFT_NODE node)
if(NOT WEFT_NODE)
  message(FATAL_ERROR "weft: node is needed to build the web UI embedded in the collector "
                      "(web/build.mjs); scripts/install-deps.sh installs it")
endif()
# The platform and CPU names npm uses (process.platform, process.arch) pick esbuild's binary.
execute_process(COMMAND ${WEFT_NODE} -p "process.platform + ';' + process.arch"
                OUTPUT_VARIABLE weft_node_target OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE weft_node_rc)
if(NOT weft_node_rc EQUAL 0)
  message(FATAL_ERROR "weft: ${WEFT_NODE} does not run (exit ${weft_node_rc})")
endif()
list(GET weft_node_target 0 WEFT_NODE_PLATFORM)
list(GET weft_node_target 1 WEFT_NODE_ARCH)

set(WEFT_WEB_DIR ${CMAKE_BINARY_DIR}/web)
set(WEFT_WEB_ASSETS_C ${CMAKE_BINARY_DIR}/web_assets.c)
file(GLOB_RECURSE weft_web_srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/web/src/*)
add_custom_command(
  OUTPUT ${WEFT_WEB_ASSETS_C} ${WEFT_WEB_DIR}/manifest.json
  COMMAND ${CMAKE_COMMAND} -DWEB=${CMAKE_SOURCE_DIR}/web -DNODE=${WEFT_NODE}
          -DNODE_PLATFORM=${WEFT_NODE_PLATFORM}
          -DNODE_ARCH=${WEFT_NODE_ARCH} -P ${CMAKE_SOURCE_DIR}/cmake/weft_web_deps.cmake
  COMMAND ${WEFT_NODE} ${CMAKE_SOURCE_DIR}/web/build.mjs --outdir ${WEFT_WEB_DIR}
          --embed ${WEFT_WEB_ASSETS_C}
  DEPENDS ${weft_web_srcs} ${CMAKE_SOURCE_DIR}/web/build.mjs ${CMAKE_SOURCE_DIR}/web/package.json
          ${CMAKE_SOURCE_DIR}/web/package-lock.json ${CMAKE_SOURCE_DIR}/cmake/weft_web_deps.cmake
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/web
  COMMENT "Bundling the web UI (web/build.mjs)"
  VERBATIM)
target_sources(weft_collector PRIVATE ${WEFT_WEB_ASSETS_C})
