import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { Type as T } from "@sinclair/typebox";
import { ErrorCode } from "../schemas/errors";
import { defineOperation } from "../schemas/operation";
import { checkerFor, describeViolation } from "./router";

/**
 * The first exchange on every direct-transport connection. The client sends
 * a request frame named `transport.hello` with JSON meta
 *
 *   { "v": 1, "nonce": <base64url of 32 random bytes>, "token": <credential> }
 *
 * The server checks the token; if it is good it replies (reply frame, same
 * request id) with
 *
 *   { "v": 1, "id": <server id>, "sig": <base64url Ed25519 signature, 64 bytes> }
 *
 * where the signed message is the UTF-8 bytes of
 *
 *   "pocket-transport-hello" 0x0A id 0x0A nonce
 *
 * (`nonce` exactly as the client sent it, base64url text, 43 characters; `id`
 * printable ASCII without spaces, so the layout is unambiguous). The client
 * checks `id` and the signature against the id and public key it was given
 * for that address (the raw 32-byte Ed25519 key, base64url, 43 characters).
 * A bad token gets an error frame `{ code, message }` and the connection
 * closes. Until the hello succeeds the server accepts frames of at most
 * `helloFrameBytesMax` declared length and no other request.
 */
export const TransportHello = defineOperation({
  name: "transport.hello",
  summary: "Authenticates a direct-transport client and proves the server's identity.",
  request: T.Object({
    v: T.Literal(1),
    nonce: T.String({ pattern: "^[A-Za-z0-9_-]{43}$" }),
    token: T.String({ minLength: 1, maxLength: 3072 }),
  }, { additionalProperties: false }),
  reply: T.Object({
    v: T.Literal(1),
    id: T.String({ pattern: "^[\\x21-\\x7e]{1,128}$" }),
    sig: T.String({ pattern: "^[A-Za-z0-9_-]{86}$" }),
  }, { additionalProperties: false }),
  errors: [ErrorCode.Unauthorized, ErrorCode.InvalidArgument, ErrorCode.TooLarge, ErrorCode.Timeout],
});
export type HelloRequest = { readonly v: 1; readonly nonce: string; readonly token: string };
export type HelloReply = { readonly v: 1; readonly id: string; readonly sig: string };

/** Declared frame length accepted before the hello succeeds, on both ends. */
export const helloFrameBytesMax = 4096;

const context = "pocket-transport-hello";
const idPattern = /^[\x21-\x7e]{1,128}$/;
const keyPattern = /^[A-Za-z0-9_-]{43}$/;
const checkRequest = checkerFor(TransportHello.request);
const checkReply = checkerFor(TransportHello.reply);

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
  const x = publicKey.export({ format: "jwk" }).x;
  if (x === undefined) throw new TypeError("ed25519 key without a public part");
  return { id, publicKey: x, privateKey };
}

/** The bytes a server signs: `"pocket-transport-hello\n" + id + "\n" + nonce`, UTF-8. */
export function helloMessage(id: string, nonce: string): Buffer {
  return Buffer.from(`${context}\n${id}\n${nonce}`, "utf8");
}

/** A hello with a fresh nonce (client side). */
export function newHello(token: string): HelloRequest {
  return { v: 1, nonce: randomBytes(32).toString("base64url"), token };
}

/** Validates a decoded hello request; returns it, or a reason it is not one. */
export function parseHello(value: unknown): HelloRequest | string {
  if (!checkRequest.Check(value)) return `${TransportHello.name}: ${describeViolation(checkRequest, value)}`;
  return value;
}

/** The server's answer to a hello it accepted. */
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
    return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: key }, format: "jwk" });
  } catch (e) {
    if (e instanceof TypeError) return undefined; // ERR_CRYPTO_INVALID_JWK
    throw e;
  }
}
