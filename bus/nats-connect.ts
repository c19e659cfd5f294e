import { AuthorizationError, connect, credsAuthenticator, UserAuthenticationExpiredError, type NatsConnection } from "@nats-io/transport-node";
import { NodeUnavailableError, UnauthorizedError } from "../schemas/errors";
import { inboxFor, type Role } from "./credentials";
import { inboxOfCreds } from "./nats-jwt";
import { readPrivateFile } from "../lib/private-file";
import { tlsFailure } from "./tls";

/** How one component reaches the bus: the server URL(s) and its credential. */
export interface NatsIdentity {
  readonly natsUrl: string | readonly string[];
  /** Path of this component's NATS credentials (a `.creds` file, kept 0600). */
  readonly natsCreds?: string;
  /** Path of the CA certificate (PEM) the server's TLS certificate must verify with; the connection is then TLS only. */
  readonly natsTlsCa?: string;
}

/** How a connection verifies a TLS server: a CA file (components) or the CA's PEM text (clients). */
export type NatsTls = { readonly caFile: string } | { readonly ca: string };

export interface ConnectAsOptions {
  readonly name: string;
  /** -1: for ever (components); clients give up after a few. */
  readonly maxReconnectAttempts?: number;
  readonly timeoutMs?: number;
  /** TLS only, verifying the server with this CA; without it, a server that requires TLS is verified with the system's CAs. */
  readonly tls?: NatsTls;
}

/**
 * Connects to NATS as one identity: its credential, and the inbox prefix that
 * credential is allowed (replies to its requests arrive there and nowhere else).
 *
 * @example
 *   const nc = await connectAs({ natsUrl, natsCreds: "/data/auth/shard-s0.creds" }, "shard", "s0", { name: "pocket-shard-s0" });
 */
export async function connectAs(identity: NatsIdentity, role: Role, id: string, options: ConnectAsOptions): Promise<NatsConnection> {
  const creds = identity.natsCreds ? readPrivateFile(identity.natsCreds) : undefined;
  const tls = identity.natsTlsCa !== undefined ? { caFile: identity.natsTlsCa } : options.tls;
  return connectWithCreds(identity.natsUrl, creds, inboxFor(role, id), { ...options, ...(tls ? { tls } : {}) });
}

/**
 * Connects with creds text (or none, for a server without authentication),
 * using the inbox prefix the credential allows unless one is given. A
 * certificate that does not verify fails as `NodeUnavailable`, saying so.
 */
export async function connectWithCreds(
  servers: string | readonly string[], creds: string | undefined, inboxPrefix: string | undefined, options: ConnectAsOptions,
): Promise<NatsConnection> {
  if (creds !== undefined && inboxPrefix === undefined) inboxPrefix = inboxOfCreds(creds);
  try {
    return await connect({
      servers: typeof servers === "string" ? servers : [...servers],
      name: options.name,
      maxReconnectAttempts: options.maxReconnectAttempts ?? -1,
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
      ...(creds !== undefined ? { authenticator: credsAuthenticator(new TextEncoder().encode(creds)) } : {}),
      ...(creds !== undefined && inboxPrefix !== undefined ? { inboxPrefix } : {}),
      ...(options.tls ? { tls: { ...options.tls } } : {}),
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof AuthorizationError || e instanceof UserAuthenticationExpiredError) {
      throw new UnauthorizedError(`NATS refused the credential: ${message}`, { cause: e });
    }
    throw new NodeUnavailableError(`cannot reach NATS at ${String(servers)}: ${tlsFailure(e) ?? message}`, { cause: e });
  }
}
