import { ErrorCode } from "../../schemas/errors";
import { NodeOps, ShardOps } from "../../schemas/operations";
import { BinaryLayouts, decodeBinary, encodeBinary, isBinaryMeta } from "../../schemas/codec";
import { Prng } from "../../lib/prng";
import { decodeReplyMeta, encodeJson, encodeRequestMeta } from "../../bus/body";
import { Router, Transport, WithPayload } from "../../bus/router";

const ref = { nodeId: "dram-0", addr: "127.0.0.1:4000", key: "k".repeat(43), extentId: "abc.1", length: 1_048_576, crc: 0xdeadbeef };

test("every layout round-trips the values its operation carries, and is smaller than JSON", () => {
  const samples: Array<[string, "request" | "reply", Record<string, unknown>]> = [
    [ShardOps.objectGet.name, "request", { token: "t.x", path: "a/ü/b", offset: 5, length: 2 ** 40 }],
    [ShardOps.objectGet.name, "reply", { path: "a", size: 2 ** 50, version: 3, inline: false, extents: [ref, { ...ref, crc: undefined, grant: "g.1.x" }] }],
    [ShardOps.objectGet.name, "reply", { path: "a", size: 10, version: 1, inline: true, extents: [], crc: 0, prefixCrc: 0xffffffff, suffixCrc: 1 }],
    [ShardOps.objectPut.name, "request", { path: "p", createOnly: true, crc: 7 }],
    [ShardOps.objectLookup.name, "reply", { path: "p", size: 3, version: 9, extents: [ref] }],
    [NodeOps.extentRead.name, "reply", { length: 4096, prefixCrc: 1, suffixCrc: 2 }],
    [NodeOps.extentWrite.name, "request", { token: "t", extentId: "x.1", grant: "g", crc: 3 }],
    [NodeOps.extentWrite.name, "reply", { length: 1, crc: 2, receipt: "r" }],
  ];
  for (const [name, side, value] of samples) {
    const layout = BinaryLayouts[name]![side];
    const bytes = encodeBinary(layout, value);
    expect(isBinaryMeta(bytes)).toBe(true);
    const clean = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
    expect(decodeBinary(layout, bytes)).toEqual(clean);
    expect(bytes.byteLength).toBeLessThan(encodeJson(value).byteLength);
  }
});

test("malformed binary metas are InvalidArgument, never a crash or a partial value", () => {
  const layout = BinaryLayouts[ShardOps.objectGet.name]!.reply;
  const good = encodeBinary(layout, { path: "a", size: 1, version: 1, inline: false, extents: [ref] });
  const bad = [
    good.subarray(0, good.byteLength - 1),                      // ends inside a field
    Buffer.concat([good, Buffer.from([0])]),                   // trailing bytes
    Buffer.from([0, 2, 0, 0]),                                  // unknown version
    Buffer.from([0, 1, 0xff, 0xff]),                            // fields the layout does not have
    Buffer.from([0, 1, 8, 0, 7]),                               // a boolean of 7
  ];
  for (const b of bad) expect(() => decodeBinary(layout, b)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  const rng = Prng.forCase(5, 0);
  for (let i = 0; i < 2_000; i++) {
    const cut = Buffer.from(good);
    cut[2 + rng.below(cut.byteLength - 2)] = rng.u32() & 0xff;
    try {
      decodeBinary(layout, cut.subarray(0, rng.int(2, cut.byteLength)));
    } catch (e) {
      expect(e).toMatchObject({ code: ErrorCode.InvalidArgument });
    }
  }
});

test("a server answers a binary request in binary and a JSON request in JSON; both check the same schema", async () => {
  const router = new Router()
    .on(NodeOps.extentRead, (req) => new WithPayload({ length: 3, prefixCrc: 0, suffixCrc: req.offset ?? 0 }, Buffer.from("abc")))
    .on(ShardOps.stat, () => ({ path: "a", type: "object" as const, size: 0, version: 1, modifiedAtMs: 0, children: 0 }));
  const name = NodeOps.extentRead.name;
  const binary = await router.dispatch(name, encodeRequestMeta(name, { extentId: "x.1", offset: 4 }), undefined, Transport.Tcp);
  expect(binary.ok && isBinaryMeta(binary.meta)).toBe(true);
  expect(binary.ok && decodeReplyMeta(name, binary.meta)).toEqual({ length: 3, prefixCrc: 0, suffixCrc: 4 });
  const json = await router.dispatch(name, encodeJson({ extentId: "x.1" }), undefined, Transport.Tcp);
  expect(json.ok && JSON.parse(Buffer.from(json.meta).toString())).toEqual({ length: 3, prefixCrc: 0, suffixCrc: 0 });
  // The schema still holds: an extent id the pattern refuses is refused in binary too.
  const refused = await router.dispatch(name, encodeRequestMeta(name, { extentId: "a b" }), undefined, Transport.Tcp);
  expect(refused).toMatchObject({ ok: false, code: ErrorCode.InvalidArgument });
  // An operation without a layout takes no binary meta.
  const other = await router.dispatch(ShardOps.stat.name, Buffer.from([0, 1, 0, 0]), undefined, Transport.Tcp);
  expect(other).toMatchObject({ ok: false, code: ErrorCode.InvalidArgument, message: expect.stringMatching(/no binary layout/) });
});
