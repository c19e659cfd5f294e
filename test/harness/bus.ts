import { PermissionViolationError, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { connectWithCreds } from "../../bus/nats-connect";
import { readPrivateFile } from "../../lib/private-file";
import { fromSeed, mintUserCreds } from "../../bus/nats-jwt";
import type { ClusterAuth } from "../../deploy/cluster-auth";
import { eventually } from "./cluster";

/** How long the server has to refuse a publish or a subscription once the client has flushed it. */
const refusalTimeoutMs = 5_000;
/** Messages one probe subscription keeps; past it, only the count grows. */
const keptMessagesMax = 10_000;

export type Operation = "publish" | "subscription";

/** What one subscription of a probe got: the messages (up to a bound) and, if the server refused it, why. */
export interface ProbeSubscription {
  readonly subject: string;
  readonly messages: Msg[];
  received: number;
  /** Resolves with the error the subscription closed with (a permissions violation), or undefined. */
  readonly closed: Promise<void | Error>;
}

/**
 * A test's own NATS connection with one identity (or none), remembering every
 * permissions violation the server reports to it, so a test can tell a
 * publish or subscription the server refused from one it let through.
 *
 * @example
 *   const p = await BusProbe.connect(t.nats.url, reg.credentials, "lambda-a");
 *   await p.expectPublishRefused(Subjects.nodeHeartbeat("dram-0"), encodeJson(spoof));
 *   await p.close();
 */
export class BusProbe {
  readonly #violations: PermissionViolationError[] = [];
  readonly #watching: Promise<void>;

  private constructor(readonly nc: NatsConnection) {
    this.#watching = (async () => {
      for await (const s of nc.status()) {
        if (s.type === "error" && s.error instanceof PermissionViolationError) this.#violations.push(s.error);
      }
    })();
  }

  /** Connects with creds text (anonymously when undefined); fails with the bus's refusal as `UnauthorizedError`. */
  static async connect(url: string, creds: string | undefined, name: string): Promise<BusProbe> {
    return new BusProbe(await connectWithCreds(url, creds, undefined, { name, maxReconnectAttempts: 10, timeoutMs: 5_000 }));
  }

  /** Whether the server has refused `operation` on `subject` to this connection so far. */
  refused(operation: Operation, subject: string): boolean {
    return this.#violations.some((v) => v.operation === operation && v.subject === subject);
  }

  /** Publishes `data` on `subject` and waits for the server to refuse it; fails if it does not. */
  async expectPublishRefused(subject: string, data: Uint8Array = new Uint8Array(0)): Promise<void> {
    this.nc.publish(subject, data);
    await this.nc.flush();
    await eventually(() => this.refused("publish", subject), refusalTimeoutMs, `the server refusing a publish on ${subject}`);
  }

  /** Subscribes, keeping what arrives (at most `keptMessagesMax` messages). */
  subscribe(subject: string): ProbeSubscription {
    const messages: Msg[] = [];
    const out = { subject, messages, received: 0, closed: Promise.resolve() as Promise<void | Error> };
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return; // the refusal; `closed` carries it
        out.received++;
        if (messages.length < keptMessagesMax) messages.push(msg);
      },
    });
    out.closed = sub.closed;
    return out;
  }

  /** Subscribes and waits for the server to refuse it; returns the subscription (it received nothing). */
  async expectSubscribeRefused(subject: string): Promise<ProbeSubscription> {
    const s = this.subscribe(subject);
    await this.nc.flush();
    await eventually(() => this.refused("subscription", subject), refusalTimeoutMs, `the server refusing a subscription to ${subject}`);
    const why = await s.closed;
    if (!(why instanceof PermissionViolationError)) throw new Error(`the subscription to ${subject} closed without the refusal: ${String(why)}`);
    return s;
  }

  async close(): Promise<void> {
    await this.nc.close();
    await this.#watching;
  }
}

/**
 * A credential of the cluster's account that may receive every subject and
 * publish none: what someone able to read the whole bus would see. Minted
 * with the account's signing key, for tests that look for what must never
 * travel on the bus. While it listens, a request to a subject nobody serves
 * waits for its timeout instead of failing at once (the server sees interest).
 */
export function wiretapCredentials(auth: ClusterAuth): string {
  const signer = fromSeed(Buffer.from(readPrivateFile(auth.signingSeedFile).trim(), "utf8"));
  return mintUserCreds(signer, auth.account, "test-wiretap", { pub: [], pubDeny: [">"], sub: [">"] });
}

/** Whether a message's body or any of its header values holds `needle` (ASCII: a token, a secret, a field name). */
export function carries(msg: Msg, needle: string): boolean {
  if (Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength).includes(needle)) return true;
  for (const [, values] of msg.headers ?? []) if (values.some((v) => v.includes(needle))) return true;
  return false;
}
