import { io } from 'aws-crt';
import { greengrasscoreipc } from 'aws-iot-device-sdk-v2';

/** Where the nucleus' IPC socket is and the token that authenticates this component. */
export interface IpcEndpoint {
  /** `AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT`. */
  socketPath: string;
  /** `SVCUID`: sent in the eventstream CONNECT as `{"authToken": ...}`. */
  authToken: string;
}

export type IpcClient = greengrasscoreipc.Client;

/**
 * A Greengrass IPC client for `endpoint`. The SDK's `createDefaultClientConfig()` reads
 * `process.env` itself; we pass the values read once at config time instead (docs/conventions.md rule 6), which
 * also lets tests point the client at their own IPC server.
 */
export function createIpcClient(endpoint: IpcEndpoint): IpcClient {
  const client = greengrasscoreipc.createClient({
    hostName: endpoint.socketPath,
    port: 0,
    socketOptions: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.LOCAL),
    connectTransform: (options) => {
      const message = options.message;
      message.payload = JSON.stringify({ authToken: endpoint.authToken });
      return Promise.resolve(message);
    },
  });
  guardFailedStreamClose(client);
  return client;
}

interface CrtStream {
  activate(options: unknown): Promise<void>;
  close(): void;
}

/**
 * Work around a native crash in aws-crt 1.33.1 (the version aws-iot-device-sdk-v2 1.28 pins):
 * when the IPC connection drops while a request's stream is still activating (publishes in
 * flight when the nucleus goes away), the SDK closes that stream once its activation fails,
 * and the native `event_stream_client_stream_close` frees a reference the failed activation
 * already released (`free(): invalid pointer`, the process aborts). Reproduced against the
 * test IPC server with the SDK alone (20 publishes of 64 KiB in flight, then the socket
 * drops; with this guard the same run completes). Skipping the native close of a stream
 * whose activation failed costs at most that one small native object, once per publish cut
 * off by a lost connection. Also seen there: two of the 20 SDK promises never settle, so
 * the uplink fails in-flight publishes itself when the connection drops.
 */
function guardFailedStreamClose(client: IpcClient): void {
  const rpc = (client as unknown as { rpcClient?: { newStream?: () => CrtStream } }).rpcClient;
  const newStream = rpc?.newStream?.bind(rpc);
  if (!rpc || !newStream) return;
  rpc.newStream = () => {
    const stream = newStream();
    const activate = stream.activate.bind(stream);
    const close = stream.close.bind(stream);
    let activationFailed = false;
    stream.activate = (options) =>
      activate(options).catch((err: unknown) => {
        activationFailed = true;
        throw err;
      });
    stream.close = () => {
      if (!activationFailed) close();
    };
    return stream;
  };
}

/** The modelled service error of an IPC failure (`UnauthorizedError`, ...) as text, or the error's message. */
export function ipcErrorText(err: unknown): string {
  const e = err as { serviceError?: { message?: string }; description?: string; message?: string };
  return e?.serviceError?.message ?? e?.description ?? e?.message ?? String(err);
}

export const { QOS, ReportedLifecycleState, ConfigurationValidityStatus } = greengrasscoreipc.model;
