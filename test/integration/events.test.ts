import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { EventPublisher, EventStream, ensureEventStream, readEvents } from "../../bus/events";
import { startNats, type NatsServer } from "../harness/cluster";

let ns: NatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  ns = await startNats();
  nc = await connect({ servers: ns.url });
});
afterAll(async () => {
  await nc?.close();
  await ns?.stop();
});

async function all(inputs = false): Promise<string[]> {
  const out: string[] = [];
  for await (const { event } of readEvents(nc, { inputs })) out.push(String(event["kind"]));
  return out;
}

test("the stream is bounded, and creating it again is harmless", async () => {
  expect(await ensureEventStream(nc)).toBe(true);
  expect(await ensureEventStream(nc)).toBe(true);
  const info = await (await jetstreamManager(nc)).streams.info(EventStream.name);
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
  await new Promise((r) => setTimeout(r, 200));
  expect(await all()).toEqual(["job.registered", "node.launch"]);
  expect(await all(true)).toEqual(["job.register", "job.registered", "node.launch", "job.renew"]);
});

test("following waits for new events until aborted", async () => {
  const ac = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const { event } of readEvents(nc, { follow: true, signal: ac.signal })) {
      seen.push(String(event["kind"]));
      if (seen.includes("scale.in")) ac.abort();
    }
  })();
  await new Promise((r) => setTimeout(r, 200));
  new EventPublisher(nc, true).event("scale.in", { atMs: 5 });
  await reading;
  expect(seen).toEqual(["job.registered", "node.launch", "scale.in"]);
});
