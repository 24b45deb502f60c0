/**
 * onnxruntime-node starts Microsoft telemetry on Linux (an upload endpoint compiled in, a
 * `/tmp/mat-debug-<pid>.log` per process, a database under ~/.cache) unless
 * ORT_DISABLE_TELEMETRY is set before the library loads. Every process entry imports this
 * module first (ES modules evaluate in import order), so the variable is set before any
 * import reaches onnxruntime-node; worker threads and child processes inherit it. The product
 * sends nothing anywhere its operator did not configure.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
