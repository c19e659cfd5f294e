/**
 * One interface over the systems compared: a put, a get that says when it
 * found nothing, and (where the system has one) a size lookup.
 */
import type { Redis } from "ioredis";
import type { KV } from "@nats-io/kv";
import type { PocketJob } from "../client/pocket";

export interface Store {
  /** Stores `value` under `key`; resolves once the system has acknowledged it. */
  put(key: string, value: Buffer): Promise<void>;
  /** The bytes under `key`, or undefined when there are none. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** The size of the object under `key`; absent where the system has no such lookup. */
  readonly stat?: (key: string) => Promise<number>;
}

/** A Pocket job's namespace (an object that is not there fails the get with NotFound). */
export function pocketStore(job: PocketJob): Store {
  return {
    put: async (k, v) => { await job.put(k, v); },
    get: (k) => job.get(k),
    stat: async (k) => (await job.stat(k)).size,
  };
}

/** Redis strings: SET, GET, STRLEN. */
export function redisStore(redis: Redis): Store {
  return {
    put: async (k, v) => { await redis.set(k, v); },
    get: async (k) => (await redis.getBuffer(k)) ?? undefined,
    stat: (k) => redis.strlen(k),
  };
}

/** A NATS KV bucket: put, get (a deleted or absent key reads as nothing). */
export function natsKvStore(kv: KV): Store {
  return {
    put: async (k, v) => { await kv.put(k, v); },
    get: async (k) => {
      const e = await kv.get(k);
      return e === null || e.operation !== "PUT" ? undefined : e.value;
    },
  };
}
