/**
 * onnxruntime-node starts Microsoft telemetry on Linux (an upload endpoint compiled in, a
 * `/tmp/mat-debug-<pid>.log` per process, a database under ~/.cache) unless
 * ORT_DISABLE_TELEMETRY is set before the library loads. Every module that imports
 * onnxruntime-node imports this one first (ES modules evaluate in import order), and so does
 * every process entry, so the variable is set before the library loads whatever script or
 * test reaches it; worker threads and child processes inherit it. The product
 * sends nothing anywhere its operator did not configure.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
