import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { systemClock } from "../../lib/clock";
import { systemEntropy } from "../../lib/entropy";
import { EventPublisher } from "../../bus/events";
import { NatsBus } from "../../bus/nats-bus";
import { connectWithCreds } from "../../bus/nats-connect";
import { Controller } from "../../actors/controller/controller";
import { ControllerStore } from "../../actors/controller/store";
import { MetadataShard } from "../../actors/metadata/shard";
import { createOrchestrator } from "../../actors/orchestrator";
import { ActorOps } from "../../actors/runtime/http-ops";
import { DramStore } from "../../actors/storage/dram-store";
import { StorageNode } from "../../actors/storage/storage-node";
import { startNats, type NatsServer } from "../harness/cluster";

/*
 * An actor that fails to stop cleanly still lets go of everything: when its
 * bus does not drain or its store does not close, stop() fails with that
 * error, and the steps after it (the store, the HTTP server of its metrics and
 * probes) still run. Inline actors live in a process that goes on (tests,
 * `LocalCluster` in inline mode): a server left behind would hold its port.
 * The faults are raised by the real bus and store, after they did their work.
 */

const secret = "actor-stop-test-secret-0123456789";
let nats: NatsServer;
let tmp: string;
const connections: NatsConnection[] = [];

beforeAll(async () => {
  nats = await startNats();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-actor-stop-"));
});

afterAll(async () => {
  for (const nc of connections) if (!nc.isClosed()) await nc.close();
  await nats.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** The fault a step of stopping raises. */
class InjectedFault extends Error {
  override readonly name = "InjectedFault";
}

/** The bus of a real NATS connection, whose drain fails after draining (as a server gone mid-drain leaves it). */
class DrainFails extends NatsBus {
  constructor(nc: NatsConnection, readonly fault: InjectedFault) {
    super(nc);
  }

  override async drain(): Promise<void> {
    await super.drain();
    throw this.fault;
  }
}

/** The DRAM store, whose close fails after closing (as a device that fails its last flush). */
class CloseFails extends DramStore {
  constructor(capacityBytes: number, readonly fault: InjectedFault) {
    super(capacityBytes);
  }

  override async close(): Promise<void> {
    await super.close();
    throw this.fault;
  }
}

async function connection(name: string): Promise<NatsConnection> {
  const nc = await connectWithCreds(nats.url, undefined, undefined, { name, maxReconnectAttempts: 0 });
  connections.push(nc);
  return nc;
}

/** Whether something accepts TCP connections at host:port (false: refused). */
function listening(hostPort: string): Promise<boolean> {
  const at = hostPort.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostPort.slice(0, at), port: Number(hostPort.slice(at + 1)) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNREFUSED" ? resolve(false) : reject(e)));
  });
}

/** Stops an actor whose stop meets `fault`: it must fail with that very error, its HTTP server gone. */
async function expectStopFailsAndLetsGo(actor: { stop(): Promise<void> }, ops: ActorOps, fault: InjectedFault): Promise<void> {
  const http = ops.httpAddr;
  try {
    expect(await listening(http)).toBe(true);
    await expect(actor.stop()).rejects.toBe(fault);
    expect(await listening(http)).toBe(false);
  } finally {
    await ops.close();
  }
}

test("a storage node whose store fails to close: stop fails with that error, its bus is drained and its HTTP port let go", async () => {
  const fault = new InjectedFault("the store did not close");
  const nc = await connection("node-stop");
  const ops = await ActorOps.start({ httpPort: 0 }, "node", "dram-stop");
  const node = StorageNode.over(
    { natsUrl: nats.url, secret, nodeId: "dram-stop", tier: "dram", capacityBytes: 2 ** 20 }, { bus: new NatsBus(nc), clock: systemClock },
    new CloseFails(2 ** 20, fault), ops,
  );
  await expectStopFailsAndLetsGo(node, ops, fault);
  expect(nc.isClosed()).toBe(true);
});

test("a shard whose bus fails to drain: stop fails with that error, its HTTP port let go", async () => {
  const fault = new InjectedFault("the bus did not drain");
  const ops = await ActorOps.start({ httpPort: 0 }, "shard", "s-stop");
  const shard = MetadataShard.over(
    { natsUrl: nats.url, secret, shardId: "s-stop" }, { bus: new DrainFails(await connection("shard-stop"), fault), clock: systemClock, entropy: systemEntropy }, ops,
  );
  await expectStopFailsAndLetsGo(shard, ops, fault);
});

test("a controller whose bus fails to drain: stop fails with that error, and still closes its store and lets go of its HTTP port", async () => {
  const fault = new InjectedFault("the bus did not drain");
  const nc = await connection("controller-stop");
  const store = await ControllerStore.open(path.join(tmp, "controller.sqlite"));
  const ops = await ActorOps.start({ httpPort: 0 }, "controller", "controller");
  const orchestrator = await createOrchestrator({ kind: "events-only" }, { natsUrl: nats.url, secret });
  const controller = await Controller.over({ natsUrl: nats.url, secret }, {
    bus: new DrainFails(nc, fault), clock: systemClock, entropy: systemEntropy, events: new EventPublisher(nc, false), store, orchestrator, ownsStore: true,
  }, ops);
  await expectStopFailsAndLetsGo(controller, ops, fault);
  await expect(store.ping()).rejects.toThrow();
});
