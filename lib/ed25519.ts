/**
 * Raw Ed25519 keys (32 bytes) to and from Node's KeyObjects, by their DER
 * forms (a fixed prefix, then the raw bytes).
 *
 * Not through JWK: Node 20's JWK export holds a key's lock while it
 * allocates strings, and a garbage collection that frees a key-generation
 * job in that window waits on the same lock, so the thread deadlocks
 * (seen in a test generating many keys).
 *
 * @example
 *   const { publicKey } = generateKeyPairSync("ed25519");
 *   publicKeyFromRaw(rawPublicKey(publicKey)).equals(publicKey) === true;
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";

/** DER of a PKCS#8 Ed25519 private key, up to its 32-byte seed. */
const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex");
/** DER of an SPKI Ed25519 public key, up to its 32 raw bytes. */
const spkiPrefix = Buffer.from("302a300506032b6570032100", "hex");

export const Ed25519KeyBytes = 32;

/** The 32 raw bytes of an Ed25519 public key (or of a private key's public half). */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = (key.type === "private" ? createPublicKey(key) : key).export({ format: "der", type: "spki" });
  return tail(der, spkiPrefix);
}

/** The 32-byte seed of an Ed25519 private key. */
export function rawSeed(privateKey: KeyObject): Buffer {
  return tail(privateKey.export({ format: "der", type: "pkcs8" }), pkcs8Prefix);
}

/** An Ed25519 public key from its 32 raw bytes. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.byteLength !== Ed25519KeyBytes) throw new TypeError(`an Ed25519 public key is ${Ed25519KeyBytes} bytes, not ${raw.byteLength}`);
  return createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: "der", type: "spki" });
}

/** An Ed25519 private key from its 32-byte seed. */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.byteLength !== Ed25519KeyBytes) throw new TypeError(`an Ed25519 seed is ${Ed25519KeyBytes} bytes, not ${seed.byteLength}`);
  return createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" });
}

function tail(der: Buffer, prefix: Buffer): Buffer {
  if (der.byteLength !== prefix.byteLength + Ed25519KeyBytes || !der.subarray(0, prefix.byteLength).equals(prefix)) {
    throw new TypeError("not an Ed25519 key");
  }
  return Buffer.from(der.subarray(prefix.byteLength));
}
