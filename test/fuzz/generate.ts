import type { GenContext } from "./context";
import { natsPublishCase, natsRequestCase, type NatsPublishCase, type NatsRequestCase } from "./nats-cases";
import { Prng } from "../../lib/prng";
import { tcpCase, type TcpCase } from "./tcp-cases";

/**
 * Fuzz cases: a case is a pure function of (seed, index, context). The
 * context names what the cases aim at (addresses, keys, tokens, ids); the
 * generators never do I/O and never read the clock, so `--seed S --from I
 * --cases 1` makes case I again, byte for byte given the same context.
 *
 *   tcp-cases.ts   byte streams to the shard's and the nodes' TCP ports
 *   nats-cases.ts  requests on every subject family; garbage on heartbeat and usage subjects
 *   requests.ts    the requests both carry, and what each must get back
 *   prng.ts        the seeded generator (xorshift128 seeded by splitmix32)
 */
export type { GenContext, TcpEndpoint, FuzzJob } from "./context";
export { Sender } from "./context";
export type { NatsPublishCase, NatsRequestCase } from "./nats-cases";
export type { TcpCase, TcpOutcome, TcpRequest } from "./tcp-cases";

export type FuzzCase = NatsRequestCase | NatsPublishCase | TcpCase;

/**
 * Case `index` of `seed`.
 *
 * @example
 *   const c = generateCase(ctx, 7, 123);   // the same case on every run
 */
export function generateCase(ctx: GenContext, seed: number, index: number): FuzzCase {
  const rng = Prng.forCase(seed, index);
  return rng.weighted<(r: Prng, c: GenContext, i: number) => FuzzCase>([
    [46, tcpCase],
    [50, natsRequestCase],
    [4, natsPublishCase],
  ])(rng, ctx, index);
}
