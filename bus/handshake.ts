import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { Type as T } from "@sinclair/typebox";
import { ErrorCode } from "../schemas/errors";
import { defineOperation } from "../schemas/operation";
import { checkerFor, describeViolation } from "./router";
import { publicKeyFromRaw, rawPublicKey } from "../lib/ed25519";

/**
 * The opening of every direct-transport connection: two rounds; the server
 * proves who it is first, and only then does the client send its credential,
 * so a process squatting on a dead server's port never sees a token. On a
 * TLS port (`TcpServer.listen(..., { tls })`) both rounds run inside TLS,
 * unchanged.
 *
 * Each message is one frame (frame.ts; integers big-endian; no payload in
 * either round). Offsets in a frame whose name is `n` bytes long:
 *
 *   0         u32  length      bytes after this field: 10 + n + m
 *   4         u8   kind        1 request, 2 reply, 3 error
 *   5         u32  requestId
 *   9         u8   n           name length (0 on replies and errors)
 *   10        n    name        ASCII
 *   10+n      u32  m           meta length
 *   14+n      m    meta        UTF-8 JSON object
 *
 * Round 1, the server proves its identity:
 *
 *   client → request  requestId H  name "transport.hello" (n = 15)
 *                     meta {"v":1,"nonce":N}
 *   server → reply    requestId H  (n = 0)
 *                     meta {"v":1,"id":I,"sig":S}
 *
 *   N  base64url, no padding, of 32 random bytes (43 characters)
 *   I  the server's id: 1-128 printable ASCII characters, no spaces
 *   S  base64url, no padding, of the 64-byte Ed25519 signature (86 characters)
 *      of the UTF-8 bytes  "pocket-transport-hello" 0x0A I 0x0A N
 *      (N exactly as the client sent it)
 *
 * So the hello this client sends, with its meta written without spaces
 * (61 bytes; any JSON spelling is accepted), is 90 bytes:
 *
 *   00 00 00 56 | 01 | 00 00 00 01 | 0F | "transport.hello" | 00 00 00 3D | {"v":1,"nonce":"<N>"}
 *
 * The client checks I and S against the id and public key it was given for
 * that address by an authenticated source (the raw 32-byte Ed25519 key,
 * base64url, 43 characters). If they do not verify, it closes the connection
 * having sent nothing but the hello.
 *
 * Round 2, the client authenticates:
 *
 *   client → request  requestId A  name "transport.auth" (n = 14)
 *                     meta {"token":T}
 *   server → reply    requestId A  (n = 0)
 *                     meta {}
 *
 *   T  the client's capability token (1-3072 characters); the meta is
 *      {"token":"<T>"}, 12 bytes plus T's JSON-escaped length
 *
 * H and A are the client's choice (this client: 1 and 2). A token the server
 * refuses gets an error frame, requestId A, meta {"code":"Unauthorized",
 * "message":...}. After the `{}` reply the connection carries requests; the
 * client sends none before it.
 *
 * Until round 2 succeeds the server reads frames of at most
 * `helloFrameBytesMax` declared bytes (length field; a larger one gets
 * `TooLarge`), and both rounds together must complete within its hello
 * timeout (else `Timeout`); those two errors carry requestId 0. A malformed
 * hello or auth (not JSON, a field missing or extra, a payload) gets
 * `InvalidArgument` with its requestId; any other request the server reads
 * before it has answered the auth (an operation, a second hello, an auth
 * first) gets `Unauthorized` with requestId 0; a reply or error frame from a
 * client gets `InvalidArgument`. Every error frame's meta is
 * {"code":C,"message":M}, and the server closes the connection after it.
 */
export const TransportHello = defineOperation({
  name: "transport.hello",
  summary: "Asks a direct-transport server to prove its identity (first round of the handshake).",
  request: T.Object({
    v: T.Literal(1),
    nonce: T.String({ pattern: "^[A-Za-z0-9_-]{43}$" }),
  }, { additionalProperties: false }),
  reply: T.Object({
    v: T.Literal(1),
    id: T.String({ pattern: "^[\\x21-\\x7e]{1,128}$" }),
    sig: T.String({ pattern: "^[A-Za-z0-9_-]{86}$" }),
  }, { additionalProperties: false }),
  errors: [ErrorCode.InvalidArgument, ErrorCode.TooLarge, ErrorCode.Timeout],
});
export type HelloRequest = { readonly v: 1; readonly nonce: string };
export type HelloReply = { readonly v: 1; readonly id: string; readonly sig: string };

export const TransportAuth = defineOperation({
  name: "transport.auth",
  summary: "Authenticates a direct-transport client to a server that has proved its identity (second round).",
  request: T.Object({
    token: T.String({ minLength: 1, maxLength: 3072 }),
  }, { additionalProperties: false }),
  reply: T.Object({}, { additionalProperties: false }),
  errors: [ErrorCode.Unauthorized, ErrorCode.InvalidArgument, ErrorCode.TooLarge, ErrorCode.Timeout],
});
export type AuthRequest = { readonly token: string };

/** Declared frame length accepted until authentication succeeds, on both ends. */
export const helloFrameBytesMax = 4096;

const context = "pocket-transport-hello";
const idPattern = /^[\x21-\x7e]{1,128}$/;
const keyPattern = /^[A-Za-z0-9_-]{43}$/;
const checkRequest = checkerFor(TransportHello.request);
const checkReply = checkerFor(TransportHello.reply);
const checkAuth = checkerFor(TransportAuth.request);
const checkAuthReply = checkerFor(TransportAuth.reply);

/** Who a server is: its id (node or shard id) and the key pair that proves it. */
export interface TransportIdentity {
  readonly id: string;
  /** Raw 32-byte Ed25519 public key, base64url: what clients are told. */
  readonly publicKey: string;
  readonly privateKey: KeyObject;
}

/** What a client expects at an address, from an authenticated source (heartbeats, the shard). */
export interface PeerIdentity {
  readonly id: string;
  /** Raw 32-byte Ed25519 public key, base64url. */
  readonly key: string;
}

/**
 * A fresh key pair for a server.
 *
 * @example
 *   const identity = newTransportIdentity("dram-0"); // publish identity.publicKey with the address
 */
export function newTransportIdentity(id: string): TransportIdentity {
  if (!idPattern.test(id)) throw new TypeError(`transport id ${JSON.stringify(id.slice(0, 64))} must be 1-128 printable ASCII characters without spaces`);
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  return { id, publicKey: rawPublicKey(publicKey).toString("base64url"), privateKey };
}

/** The bytes a server signs: `"pocket-transport-hello\n" + id + "\n" + nonce`, UTF-8. */
export function helloMessage(id: string, nonce: string): Buffer {
  return Buffer.from(`${context}\n${id}\n${nonce}`, "utf8");
}

/** A hello with a fresh nonce (client side). */
export function newHello(): HelloRequest {
  return { v: 1, nonce: randomBytes(32).toString("base64url") };
}

/** Validates a decoded hello request; returns it, or a reason it is not one. */
export function parseHello(value: unknown): HelloRequest | string {
  if (!checkRequest.Check(value)) return `${TransportHello.name}: ${describeViolation(checkRequest, value)}`;
  return value;
}

/** Validates a decoded auth request; returns it, or a reason it is not one. */
export function parseAuth(value: unknown): AuthRequest | string {
  if (!checkAuth.Check(value)) return `${TransportAuth.name}: ${describeViolation(checkAuth, value)}`;
  return value;
}

/** Whether a decoded auth reply is the `{}` that opens the connection. */
export function isAuthReply(value: unknown): boolean {
  return checkAuthReply.Check(value);
}

/** The server's answer to a well-formed hello. */
export function signHello(identity: TransportIdentity, nonce: string): HelloReply {
  const sig = sign(null, helloMessage(identity.id, nonce), identity.privateKey).toString("base64url");
  return { v: 1, id: identity.id, sig };
}

export type HelloCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Checks a server's hello reply against the identity the client expected at
 * that address and the nonce it sent.
 *
 * @example
 *   const check = verifyHello({ id: "dram-0", key }, hello.nonce, decodeJson(reply.meta));
 *   if (!check.ok) throw new PeerIdentityError(check.reason);
 */
export function verifyHello(expected: PeerIdentity, nonce: string, reply: unknown): HelloCheck {
  if (!checkReply.Check(reply)) return { ok: false, reason: `malformed hello reply (${describeViolation(checkReply, reply)})` };
  if (reply.id !== expected.id) return { ok: false, reason: `it says it is ${JSON.stringify(reply.id)}` };
  const key = publicKeyOf(expected.key);
  if (key === undefined) return { ok: false, reason: "the expected key is not a raw Ed25519 public key" };
  if (!verify(null, helloMessage(reply.id, nonce), key, Buffer.from(reply.sig, "base64url"))) {
    return { ok: false, reason: "its signature does not verify with the expected key" };
  }
  return { ok: true };
}

/** Whether `key` is a well-formed raw Ed25519 public key in base64url. */
export function isTransportKey(key: string): boolean {
  return publicKeyOf(key) !== undefined;
}

function publicKeyOf(key: string): KeyObject | undefined {
  if (!keyPattern.test(key) || Buffer.from(key, "base64url").toString("base64url") !== key) return undefined;
  try {
    return publicKeyFromRaw(Buffer.from(key, "base64url"));
  } catch (e) {
    if (e instanceof TypeError) return undefined; // not 32 bytes
    throw e;
  }
}
