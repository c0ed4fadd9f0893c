import net from 'node:net';

/**
 * A TCP proxy to a real server (Postgres here) that a test can cut, as a network failure or a restart would: `cut`
 * drops every connection and refuses new ones until `restore`. Nothing is simulated beyond the wire going away.
 */
export interface TcpProxy {
  /** `target` with its host and port replaced by the proxy's. */
  url(target: string): string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let server = createServer();
  await listen(server, 0);
  const port = (server.address() as net.AddressInfo).port;

  function createServer(): net.Server {
    return net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
  }

  async function stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  }

  return {
    url(target) {
      const url = new URL(target);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.toString();
    },
    cut: stop,
    async restore() {
      server = createServer();
      await listen(server, port);
    },
    close: stop,
  };
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}
