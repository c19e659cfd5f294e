import net from "node:net";
import { createPublicKey, randomBytes, verify } from "node:crypto";
import { decodeBody, decodeReplyMeta, decodeRequestMeta } from "../../bus/body";
import { FrameDecoder, FrameError, FrameKind } from "../../bus/frame";
import { crc32, crc32Combine } from "../../lib/checksum";
import { parsePath } from "../../actors/metadata/namespace";
import { piecesFor } from "../../client/pocket";
import { InvalidArgumentError } from "../../schemas/errors";
import { protocol } from "../../cli/contract";
import { contractDocument } from "../../cli/contract-document";
import { Echo, echoServer, goodToken } from "../harness/echo";
import { within } from "../harness/wait";

/*
 * Bytes built by hand from the documented layouts (docs/contract.md,
 * `protocol` in the export), decoded by the code that serves them: if the
 * document says something the code does not do, these fail. Nothing here is
 * built with the code's own encoders.
 */

const ascii = (s: string): Buffer => Buffer.from(s, "latin1");
const utf8 = (s: string): Buffer => Buffer.from(s, "utf8");
function u32be(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; }
function u16le(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; }
function u32le(n: number): Buffer { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; }
function f64le(n: number): Buffer { const b = Buffer.alloc(8); b.writeDoubleLE(n); return b; }
/** A binary meta `str`: u16 LE byte length, then UTF-8. */
const str = (s: string): Buffer => Buffer.concat([u16le(utf8(s).byteLength), utf8(s)]);
/** The hex of a documented example, without its spacing and labels. */
const exampleHex = (parts: ReadonlyArray<readonly [string, string]>): string => parts.map(([, h]) => h.replace(/ /g, "")).join("");

/** A frame per protocol.directTransport.frame: u32 length | u8 kind | u32 requestId | u8 n | name | u32 m | meta | payload. */
function handFrame(kind: number, requestId: number, name: string, meta: Buffer, payload = Buffer.alloc(0)): Buffer {
  const rest = Buffer.concat([Buffer.from([kind]), u32be(requestId), Buffer.from([name.length]), ascii(name), u32be(meta.byteLength), meta, payload]);
  return Buffer.concat([u32be(rest.byteLength), rest]);
}

describe("frames of the direct transport, as documented", () => {
  test("a request frame built by hand decodes to its parts, whole or dripped a byte at a time", () => {
    const meta = utf8(JSON.stringify({ path: "a/b" }));
    const frame = handFrame(1, 7, "object.stat", meta, Buffer.from([1, 2, 3]));
    for (const chunks of [[frame], [...frame].map((b) => Buffer.from([b]))]) {
      const d = new FrameDecoder(4096);
      const out = chunks.flatMap((c) => d.push(c));
      expect(out).toHaveLength(1);
      expect(out[0]!.kind).toBe(FrameKind.Request);
      expect(out[0]!.requestId).toBe(7);
      expect(out[0]!.name).toBe("object.stat");
      expect(Buffer.from(out[0]!.meta).equals(meta)).toBe(true);
      expect(Buffer.from(out[0]!.payload!).equals(Buffer.from([1, 2, 3]))).toBe(true);
    }
  });

  test("the documented example is exactly the hand-built frame", () => {
    const example = protocol["directTransport"]!.sections!["frame"]!.example!;
    expect(exampleHex(example.parts)).toBe(handFrame(1, 7, "object.stat", utf8(JSON.stringify({ path: "a/b" }))).toString("hex"));
  });

  test("reply and error frames carry no name; a name of more than 64 bytes and an unknown kind are refused", () => {
    const d = new FrameDecoder(4096);
    const [reply, error] = d.push(Buffer.concat([handFrame(2, 9, "", utf8("{}")), handFrame(3, 9, "", utf8('{"code":"NotFound","message":"x"}'))]));
    expect([reply!.kind, reply!.name, error!.kind, JSON.parse(Buffer.from(error!.meta).toString())]).toEqual([FrameKind.Reply, "", FrameKind.Error, { code: "NotFound", message: "x" }]);
    expect(new FrameDecoder(4096).push(handFrame(1, 1, "x".repeat(64), utf8("{}")))[0]!.name).toHaveLength(64);
    expect(() => new FrameDecoder(4096).push(handFrame(1, 1, "x".repeat(65), utf8("{}")))).toThrow(FrameError);
    expect(() => new FrameDecoder(4096).push(handFrame(4, 1, "x", utf8("{}")))).toThrow(FrameError);
  });
});

describe("bodies and binary metas, as documented", () => {
  test("a body built by hand splits into meta and payload; the documented example is one", () => {
    const meta = utf8(JSON.stringify({ token: "T", path: "a/b" }));
    const body = Buffer.concat([u32be(meta.byteLength), meta, Buffer.from("bytes")]);
    const split = decodeBody(body);
    expect(Buffer.from(split.meta).equals(meta)).toBe(true);
    expect(Buffer.from(split.payload!).toString()).toBe("bytes");
    expect(exampleHex(protocol["natsBody"]!.example!.parts)).toBe(Buffer.concat([u32be(meta.byteLength), meta]).toString("hex"));
    expect(() => decodeBody(Buffer.concat([u32be(1024 * 1024 + 1), Buffer.alloc(8)]))).toThrow(InvalidArgumentError);
  });

  test("a binary request meta built by hand decodes to its fields; the documented example is one", () => {
    const lookup = Buffer.concat([Buffer.from([0, 1]), u16le(0b11), str("tok"), str("a/b")]);
    expect(decodeRequestMeta("object.lookup", lookup)).toEqual({ token: "tok", path: "a/b" });
    expect(exampleHex(protocol["binaryMeta"]!.example!.parts)).toBe(lookup.toString("hex"));
    // Fields left out of the mask are absent; bits past the layout, a wrong version or trailing bytes are refused.
    expect(decodeRequestMeta("object.get", Buffer.concat([Buffer.from([0, 1]), u16le(0b1010), str("a"), f64le(5)]))).toEqual({ path: "a", length: 5 });
    expect(() => decodeRequestMeta("object.lookup", Buffer.concat([Buffer.from([0, 1]), u16le(0b111), str("t"), str("p")]))).toThrow(InvalidArgumentError);
    expect(() => decodeRequestMeta("object.lookup", Buffer.concat([Buffer.from([0, 2]), u16le(0b10), str("p")]))).toThrow(InvalidArgumentError);
    expect(() => decodeRequestMeta("object.lookup", Buffer.concat([Buffer.from([0, 1]), u16le(0b10), str("p"), Buffer.from([0])]))).toThrow(InvalidArgumentError);
  });

  test("a binary reply with extent references (refs), built from the documented layouts", () => {
    const layouts = contractDocument().binaryMeta as { extentRef: Array<[string, string]>; operations: Record<string, { reply: Array<[string, string]> }> };
    expect(layouts.operations["object.lookup"]!.reply.map(([n]) => n)).toEqual(["path", "size", "version", "extents"]);
    expect(layouts.extentRef.map(([n]) => n)).toEqual(["nodeId", "addr", "key", "extentId", "length", "crc", "grant"]);
    // One ref with nodeId, addr, key, extentId, length and crc (no grant: bits 0-5).
    const ref = Buffer.concat([u16le(0b111111), str("dram-0"), str("127.0.0.1:7000"), str("K".repeat(43)), str("e1"), f64le(1048576), u32le(0xcbf43926)]);
    const reply = Buffer.concat([Buffer.from([0, 1]), u16le(0b1111), str("x/y"), f64le(1048576), f64le(3), u16le(1), ref]);
    expect(decodeReplyMeta("object.lookup", reply)).toEqual({
      path: "x/y", size: 1048576, version: 3,
      extents: [{ nodeId: "dram-0", addr: "127.0.0.1:7000", key: "K".repeat(43), extentId: "e1", length: 1048576, crc: 0xcbf43926 }],
    });
  });
});

describe("the handshake, spoken by hand over a real socket", () => {
  test("hello, the server's proof, auth, then a request, as the steps say", async () => {
    const echo = await echoServer();
    const [host, port] = echo.server.address.split(":");
    const socket = net.connect(Number(port), host);
    const decoder = new FrameDecoder(1 << 20);
    const frames: ReturnType<FrameDecoder["push"]> = [];
    let wake = (): void => undefined;
    socket.on("data", (c: Buffer) => { frames.push(...decoder.push(c)); wake(); });
    const next = (): Promise<ReturnType<FrameDecoder["push"]>[number]> => within(new Promise((resolve) => {
      const take = (): void => { const f = frames.shift(); if (f) resolve(f); else wake = take; };
      take();
    }), 5_000, "a frame from the server");
    try {
      await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
      const nonce = randomBytes(32).toString("base64url");
      socket.write(handFrame(1, 1, "transport.hello", utf8(JSON.stringify({ v: 1, nonce }))));
      const hello = await next();
      const proof = JSON.parse(Buffer.from(hello.meta).toString()) as { v: number; id: string; sig: string };
      expect([hello.kind, hello.requestId, proof.v, proof.id]).toEqual([FrameKind.Reply, 1, 1, echo.peer.id]);
      const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: echo.peer.key }, format: "jwk" });
      expect(verify(null, utf8(`pocket-transport-hello\n${proof.id}\n${nonce}`), key, Buffer.from(proof.sig, "base64url"))).toBe(true);
      socket.write(handFrame(1, 2, "transport.auth", utf8(JSON.stringify({ token: goodToken }))));
      const auth = await next();
      expect([auth.kind, auth.requestId, Buffer.from(auth.meta).toString()]).toEqual([FrameKind.Reply, 2, "{}"]);
      socket.write(handFrame(1, 3, Echo.name, utf8(JSON.stringify({ n: 5 })), Buffer.from("hello")));
      const reply = await next();
      expect([reply.kind, reply.requestId, JSON.parse(Buffer.from(reply.meta).toString()), Buffer.from(reply.payload!).toString()]).toEqual([FrameKind.Reply, 3, { n: 5, bytes: 5 }, "hello"]);
    } finally {
      socket.destroy();
      await echo.server.close();
    }
  });
});

describe("paths, ranges and checksums, as documented", () => {
  test("\"/x\", \"x\", \"x/\" and \"//x\" are one path; empty, \".\" and \"..\" segments are refused", () => {
    for (const p of ["/x/y", "x/y/", "//x/y", "x/y"]) expect(parsePath(p)).toEqual(["x", "y"]);
    expect(parsePath("/")).toEqual([]);
    for (const p of ["a//b", "a/./b", "../a", "a\0b", `${"s".repeat(256)}`]) expect(() => parsePath(p)).toThrow(InvalidArgumentError);
  });

  test("the documented range example is what a reader reads", () => {
    const MiB = 1024 * 1024;
    const example = protocol["ranges"]!.example!;
    const [, offset, length] = /offset (\d+), length (\d+)/.exec(example.caption)!.map(Number);
    const ref = (i: number, length: number) => ({ nodeId: "n", addr: "", key: "", extentId: `extent ${i}`, length });
    const pieces = piecesFor([ref(0, MiB), ref(1, MiB), ref(2, MiB), ref(3, MiB / 2)], offset!, length!);
    expect(pieces.map((p) => [p.ref.extentId, p.offset, p.length])).toEqual([["extent 0", MiB - 100, 100], ["extent 1", 0, MiB], ["extent 2", 0, 100]]);
    const described = pieces.map((p) => [p.ref.extentId, p.length === p.ref.length ? "whole (no offset, no length)" : `offset ${p.offset}, length ${p.length}`]);
    expect(example.parts).toEqual(described);
  });

  test("CRC-32 is zlib's: the documented check value, and a range checked by combining crcs", () => {
    expect(crc32(ascii("123456789"))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
    const whole = randomBytes(1000);
    const [a, b, c] = [whole.subarray(0, 100), whole.subarray(100, 700), whole.subarray(700)];
    expect(crc32Combine(crc32Combine(crc32(a), crc32(b), b.byteLength), crc32(c), c.byteLength)).toBe(crc32(whole));
  });
});
