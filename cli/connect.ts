import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { credentialsFromEnv, PocketClient, tlsCaFromEnv } from "../client/pocket";
import { connectWithCreds } from "../bus/nats-connect";
import { peekJobClaims } from "../bus/tokens";
import { UsageError, type Flags } from "./verb";

/** Which credential a verb speaks with: an operator's, a driver's, or a lambda's. */
export const As = { Admin: "admin", Driver: "driver", Lambda: "lambda" } as const;
export type As = (typeof As)[keyof typeof As];

export const defaultNatsUrl = "nats://127.0.0.1:4222";

export function natsUrl(flags: Flags): string {
  return flags.nats ?? process.env["POCKET_NATS_URL"] ?? defaultNatsUrl;
}

/** The creds text for a verb: --creds, else the environment variable of its role; undefined if none is set. */
export function credentialsFor(flags: Flags, as: As): string | undefined {
  if (flags.creds) return fs.readFileSync(flags.creds, "utf8");
  if (as === As.Lambda) {
    const lambda = credentialsFromEnv({ POCKET_CREDS: process.env["POCKET_CREDS"] });
    if (lambda) return lambda;
  }
  const file = as === As.Admin ? process.env["POCKET_ADMIN_CREDS"] : process.env["POCKET_NATS_CREDS"];
  return file ? fs.readFileSync(file, "utf8") : undefined;
}

/** The CA certificate (PEM) of a cluster that runs TLS: --tls-ca, else the file POCKET_TLS_CA names; undefined if neither. */
export function tlsCaFor(flags: Flags): string | undefined {
  return flags.tlsCa ? fs.readFileSync(flags.tlsCa, "utf8") : tlsCaFromEnv();
}

/** Runs `fn` with a client connected as `as`, and closes it after. */
export async function withClient<T>(flags: Flags, as: As, fn: (c: PocketClient) => Promise<T>): Promise<T> {
  const c = await PocketClient.connect({
    servers: natsUrl(flags), name: "pocket-cli", transport: flags.transport, credentials: credentialsFor(flags, as), tlsCa: tlsCaFor(flags),
  });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** A plain NATS connection as an operator (the event stream). */
export function connectAdmin(flags: Flags): Promise<NatsConnection> {
  const ca = tlsCaFor(flags);
  return connectWithCreds(natsUrl(flags), credentialsFor(flags, As.Admin), undefined, {
    name: "pocket-cli", maxReconnectAttempts: 10, ...(ca !== undefined ? { tls: { ca } } : {}),
  });
}

/** The job's token (--token, else POCKET_TOKEN), which must be `job`'s. */
export function tokenFor(flags: Flags, job: string | undefined): string {
  if (!job) throw new UsageError("JOB is missing");
  const token = flags.token ?? process.env["POCKET_TOKEN"];
  if (!token) throw new UsageError("no token: set POCKET_TOKEN or pass --token (from `pocket job register`)");
  const claims = peekJobClaims(token);
  if (claims.jobId !== job) throw new UsageError(`the token is for job ${claims.jobId}, not ${job}`);
  return token;
}
