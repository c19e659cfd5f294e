import { TcpServer } from "../../bus/tcp-server";
import type { TransportIdentity } from "../../bus/handshake";
import type { Router } from "../../bus/router";
import { readServerTls, type ServerTlsFiles } from "../../bus/tls";
import type { TokenAuthority } from "../../bus/tokens";

/** Where a shard or node serves its direct transport. */
export interface DirectTransportConfig {
  /** Interface and port (port 0 picks a free one). */
  readonly host?: string;
  readonly port?: number;
  /** Serve over TLS only, with this certificate. */
  readonly tls?: ServerTlsFiles;
}

/**
 * Serves `router` on the direct transport as a shard or node does: the
 * server proves `identity`, a connection authenticates with a job token,
 * and frames may be up to `frameBytesMax` once it has.
 */
export function listenDirect(
  router: Router, config: DirectTransportConfig, frameBytesMax: number, identity: TransportIdentity, tokens: TokenAuthority,
  allocLargeFrame?: (size: number) => Buffer,
): Promise<TcpServer> {
  return TcpServer.listen(router, {
    host: config.host ?? "127.0.0.1",
    port: config.port ?? 0,
    frameBytesMax,
    identity,
    authenticate: (token) => { tokens.verifyJob(token); },
    tls: config.tls ? readServerTls(config.tls) : undefined,
    ...(allocLargeFrame ? { allocLargeFrame } : {}),
  });
}
