import { Type as T } from "@sinclair/typebox";
import { UnauthorizedError } from "../../schemas/errors";
import { defineOperation, PayloadDirection } from "../../schemas/operation";
import { newTransportIdentity, type PeerIdentity, type TransportIdentity } from "../../bus/handshake";
import { Router, WithPayload } from "../../bus/router";
import { TcpServer, type TcpServerOptions } from "../../bus/tcp-server";

/** Returns its request's payload; test-only. */
export const Echo = defineOperation({
  name: "test.echo",
  summary: "Echoes the request payload.",
  request: T.Object({ n: T.Integer() }, { additionalProperties: false }),
  reply: T.Object({ n: T.Integer(), bytes: T.Integer() }),
  errors: [],
  payload: PayloadDirection.Request,
});

/** The one token an echo server accepts. */
export const goodToken = "good-token-0123456789";

export interface EchoServer {
  readonly server: TcpServer;
  readonly identity: TransportIdentity;
  readonly peer: PeerIdentity;
  /** Requests the echo handler has run. */
  readonly calls: { n: number };
}

/**
 * A direct-transport server with one operation (Echo), identity `id`,
 * accepting only `goodToken`; `reply` answers in place of the echo.
 */
export async function echoServer(
  options: Partial<TcpServerOptions> = {}, id = "node-a",
  reply?: (n: number) => WithPayload<{ n: number; bytes: number }> | Promise<WithPayload<{ n: number; bytes: number }>>,
): Promise<EchoServer> {
  const identity = newTransportIdentity(id);
  const calls = { n: 0 };
  const router = new Router().on(Echo, (req, ctx) => {
    calls.n++;
    return reply ? reply(req.n) : new WithPayload({ n: req.n, bytes: ctx.payload?.byteLength ?? 0 }, ctx.payload ?? new Uint8Array(0));
  });
  const server = await TcpServer.listen(router, {
    frameBytesMax: 1024 * 1024 + 64 * 1024,
    identity,
    authenticate: (token) => {
      if (token !== goodToken) throw new UnauthorizedError("unknown token");
    },
    ...options,
  });
  return { server, identity, calls, peer: { id: identity.id, key: identity.publicKey } };
}
