import type { Server } from 'node:http';

/**
 * Stops an HTTP server without waiting on keep-alive clients: `close()` stops accepting and
 * drops the sockets idle right now, but a socket whose request is in flight goes idle only
 * after its answer, and would then hold the stop for the keep-alive timeout (5 s by default).
 * So idle sockets are swept every `sweepMs` until the server has closed. In-flight requests are
 * answered, never cut. Used by the agent's and the fleet's stop.
 */
export async function closeHttpServer(server: Server, sweepMs = 25): Promise<void> {
  // A server that was not listening calls back with an error: it is stopped either way.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const sweep = setInterval(() => server.closeIdleConnections(), sweepMs);
  server.closeIdleConnections();
  await closed.finally(() => clearInterval(sweep));
}
