/**
 * The NATS KV column: what a NATS user would otherwise keep small objects in.
 * Its own plain nats-server (JetStream on, no authentication), one bucket
 * with history 1 on memory storage, one replica.
 *
 * @example
 *   const kv = await KvServer.start();
 *   const { bucket, close } = await openKv(kv.url, kv.bucket, "bench-0");
 *   await bucket.put("a", new Uint8Array([1]));
 *   await close();
 *   await kv.stop();
 */
import { connect } from "@nats-io/transport-node";
import { StorageType } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import { NatsServer } from "../deploy/nats-server";

/** How the bucket is configured, as the results state it. */
export const kvBucketConfig = { bucket: "pocket_bench", history: 1, storage: "memory", replicas: 1 } as const;

/** A nats-server with JetStream and the benchmark's bucket. */
export class KvServer {
  private constructor(private readonly server: NatsServer, readonly bucket: string) {}

  get url(): string { return this.server.url; }
  get pid(): number | undefined { return this.server.pid; }

  /** Starts the server on a free port and creates the bucket. */
  static async start(): Promise<KvServer> {
    const server = await NatsServer.start({ jetstream: true });
    try {
      const nc = await connect({ servers: server.url, name: "bench-kv-setup" });
      try {
        await new Kvm(nc).create(kvBucketConfig.bucket, {
          history: kvBucketConfig.history, storage: StorageType.Memory, replicas: kvBucketConfig.replicas,
        });
      } finally {
        await nc.close();
      }
    } catch (e) {
      await server.stop();
      throw e;
    }
    return new KvServer(server, kvBucketConfig.bucket);
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }
}

/** A connection to the KV server and its bucket; `close` drains the connection. */
export async function openKv(url: string, bucket: string, name: string): Promise<{ readonly bucket: KV; close(): Promise<void> }> {
  const nc = await connect({ servers: url, name });
  try {
    const kv = await new Kvm(nc).open(bucket);
    return { bucket: kv, close: () => nc.drain() };
  } catch (e) {
    await nc.close();
    throw e;
  }
}
