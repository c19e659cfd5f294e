import fs from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { EventPublisher, EventStream, ensureEventStream, readEvents } from "../../bus/events";
import { connectWithCreds } from "../../bus/nats-connect";
import { ClusterAuth, eventually, Role, startAuthNats, type NatsServer } from "../harness/cluster";
import { within } from "../harness/wait";

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

/** Each test starts without the stream and makes what it reads: none depends on another's events. */
beforeEach(async () => {
  const jsm = await jetstreamManager(nc);
  for await (const name of jsm.streams.names()) if (name === EventStream.name) await jsm.streams.delete(name);
});

/** Every event kind on the stream, read to its end (decisions only, or with `inputs`); a read that does not stop fails. */
async function all(inputs = false): Promise<string[]> {
  const read = async (): Promise<string[]> => {
    const out: string[] = [];
    for await (const { event } of readEvents(reader, { inputs })) out.push(String(event["kind"]));
    return out;
  };
  return within(read(), 5_000, `a read of the stream${inputs ? " with inputs" : ""} to its end`);
}

/** Waits until the stream holds `n` messages (plain publishes are stored after the server has taken them). */
async function stored(n: number): Promise<void> {
  const jsm = await jetstreamManager(reader);
  await eventually(async () => (await jsm.streams.info(EventStream.name)).state.messages === n, 5_000, `${n} messages stored`);
}

test("the stream is bounded, and creating it again is harmless", async () => {
  expect(await ensureEventStream(nc)).toBe(true);
  new EventPublisher(nc, true).event("job.registered", { atMs: 1 });
  await stored(1);
  expect(await ensureEventStream(nc)).toBe(true);
  const info = await (await jetstreamManager(reader)).streams.info(EventStream.name);
  expect(info.config.max_msgs).toBe(EventStream.maxMessages);
  expect(info.config.max_bytes).toBe(EventStream.maxBytes);
  expect(info.config.max_age).toBeGreaterThan(0);
  // What the stream held before is still there.
  expect(info.state.messages).toBe(1);
  expect(await all()).toEqual(["job.registered"]);
});

test("decisions and inputs are kept in order; a read stops at the end even when the last message is an input", async () => {
  expect(await ensureEventStream(nc)).toBe(true);
  const p = new EventPublisher(nc, true);
  p.input("job.register", { atMs: 1 });
  // Stored, not only sent: a read of a stream that is still empty would stop at once for another reason.
  await stored(1);
  expect(await all()).toEqual([]);
  p.event("job.registered", { atMs: 2 });
  p.event("node.launch", { atMs: 3 });
  p.input("job.renew", { atMs: 4 });
  await stored(4);
  expect(await all()).toEqual(["job.registered", "node.launch"]);
  expect(await all(true)).toEqual(["job.register", "job.registered", "node.launch", "job.renew"]);
});

test("following waits for new events until aborted", async () => {
  expect(await ensureEventStream(nc)).toBe(true);
  const p = new EventPublisher(nc, true);
  p.event("job.registered", { atMs: 1 });
  p.event("node.launch", { atMs: 2 });
  await stored(2);
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
  p.event("scale.in", { atMs: 3 });
  await within(reading, 5_000, "a following read, once aborted");
  expect(seen).toEqual(["job.registered", "node.launch", "scale.in"]);
});
