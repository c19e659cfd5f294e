import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { EventPublisher, EventStream, ensureEventStream, readEvents } from "../../bus/events";
import { connectWithCreds } from "../../bus/nats-connect";
import { ClusterAuth, eventually, Role, startAuthNats, type NatsServer } from "../harness/cluster";

let ns: NatsServer;
let auth: ClusterAuth;
/** The controller's identity: it creates the stream and publishes decisions and inputs. */
let nc: NatsConnection;
/** An operator's: it reads the stream (and may not write to it). */
let reader: NatsConnection;
beforeAll(async () => {
  ({ nats: ns, auth } = await startAuthNats());
  nc = await connectWithCreds(ns.url, auth.credentials(Role.Controller, "controller"), undefined, { name: "test-controller" });
  reader = await connectWithCreds(ns.url, auth.credentials(Role.Operator, "events"), undefined, { name: "test-operator" });
});
afterAll(async () => {
  await reader?.close();
  await nc?.close();
  await ns?.stop();
  if (auth) fs.rmSync(auth.dir, { recursive: true, force: true });
});

async function all(inputs = false): Promise<string[]> {
  const out: string[] = [];
  for await (const { event } of readEvents(reader, { inputs })) out.push(String(event["kind"]));
  return out;
}

test("the stream is bounded, and creating it again is harmless", async () => {
  expect(await ensureEventStream(nc)).toBe(true);
  expect(await ensureEventStream(nc)).toBe(true);
  const info = await (await jetstreamManager(reader)).streams.info(EventStream.name);
  expect(info.config.max_msgs).toBe(EventStream.maxMessages);
  expect(info.config.max_bytes).toBe(EventStream.maxBytes);
  expect(info.config.max_age).toBeGreaterThan(0);
});

test("decisions and inputs are kept in order; a read stops at the end even when the last message is an input", async () => {
  const p = new EventPublisher(nc, true);
  p.input("job.register", { atMs: 1 });
  await nc.flush();
  expect(await all()).toEqual([]);
  p.event("job.registered", { atMs: 2 });
  p.event("node.launch", { atMs: 3 });
  p.input("job.renew", { atMs: 4 });
  const jsm = await jetstreamManager(reader);
  await eventually(async () => (await jsm.streams.info(EventStream.name)).state.messages === 4, 5_000, "four messages stored");
  expect(await all()).toEqual(["job.registered", "node.launch"]);
  expect(await all(true)).toEqual(["job.register", "job.registered", "node.launch", "job.renew"]);
});

test("following waits for new events until aborted", async () => {
  const ac = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const { event } of readEvents(reader, { follow: true, signal: ac.signal })) {
      seen.push(String(event["kind"]));
      if (seen.includes("scale.in")) ac.abort();
    }
  })();
  // Caught up with what is stored, it waits for more.
  await eventually(() => seen.length === 2, 5_000, "the stored events read");
  new EventPublisher(nc, true).event("scale.in", { atMs: 5 });
  await reading;
  expect(seen).toEqual(["job.registered", "node.launch", "scale.in"]);
});
