import { generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { privateKeyFromSeed, publicKeyFromRaw, rawPublicKey, rawSeed } from "../lib/ed25519";

/**
 * NATS nkeys (Ed25519 keys in NATS's text form) on node:crypto's native
 * Ed25519: minting a credential must not cost the controller milliseconds of
 * pure-JavaScript curve arithmetic per job.
 *
 * Text form (as in the nkeys spec): base32 (RFC 4648, no padding) of
 * `prefix byte | 32 key bytes | CRC-16/XMODEM little-endian`; a seed is
 * `0x90 | (kind >> 5), (kind & 31) << 3 | 32 seed bytes | CRC-16`, so
 * operators read `O…`/`SO…`, accounts `A…`/`SA…`, users `U…`/`SU…`.
 *
 * @example
 *   const user = newNkey("user");            // user.getPublicKey() starts with "U"
 *   const again = nkeyFromSeed(Buffer.from(user.getSeed()).toString());
 */
export const NkeyKind = { operator: 14 << 3, account: 0, user: 20 << 3 } as const;
export type NkeyKind = keyof typeof NkeyKind;

const seedPrefix = 18 << 3;
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

export interface Nkey {
  getPublicKey(): string;
  getSeed(): Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export function base32Encode(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

function base32Decode(text: string): Buffer {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error("not an nkey: bad base32");
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function withCrc(raw: Buffer): Buffer {
  const c = crc16(raw);
  return Buffer.concat([raw, Buffer.from([c & 0xff, c >> 8])]);
}

function checked(text: string): Buffer {
  const raw = base32Decode(text);
  if (raw.length < 4) throw new Error("not an nkey: too short");
  const body = raw.subarray(0, raw.length - 2);
  if (raw.readUInt16LE(raw.length - 2) !== crc16(body)) throw new Error("not an nkey: checksum mismatch");
  return body;
}

function encodePublic(kind: number, key: Buffer): string {
  return base32Encode(withCrc(Buffer.concat([Buffer.from([kind]), key])));
}

class NativeNkey implements Nkey {
  readonly #public: string;
  readonly #seed: string;
  constructor(kind: number, private readonly privateKey: KeyObject, seed: Buffer, publicKey: Buffer) {
    this.#public = encodePublic(kind, publicKey);
    this.#seed = base32Encode(withCrc(Buffer.concat([Buffer.from([seedPrefix | (kind >> 5), (kind & 31) << 3]), seed])));
  }
  getPublicKey(): string { return this.#public; }
  getSeed(): Uint8Array { return Buffer.from(this.#seed, "utf8"); }
  sign(data: Uint8Array): Uint8Array { return sign(null, data, this.privateKey); }
}

function fromRawSeed(kind: number, seed: Buffer): Nkey {
  const privateKey = privateKeyFromSeed(seed);
  return new NativeNkey(kind, privateKey, seed, rawPublicKey(privateKey));
}

/** A fresh key pair of one kind. */
export function newNkey(kind: NkeyKind): Nkey {
  const { privateKey } = generateKeyPairSync("ed25519");
  return new NativeNkey(NkeyKind[kind], privateKey, rawSeed(privateKey), rawPublicKey(privateKey));
}

/** The key pair of an encoded seed (`S…`). */
export function nkeyFromSeed(text: string): Nkey {
  const body = checked(text.trim());
  if (body.length !== 34 || (body[0]! & 0xf8) !== seedPrefix) throw new Error("not an nkey seed");
  const kind = ((body[0]! & 7) << 5) | (body[1]! >> 3);
  return fromRawSeed(kind, body.subarray(2));
}

/** Checks an Ed25519 signature against an encoded public key (`O…`, `A…`, `U…`). */
export function nkeyVerify(publicKey: string, data: Uint8Array, signature: Uint8Array): boolean {
  const body = checked(publicKey);
  if (body.length !== 33) return false;
  return verify(null, data, publicKeyFromRaw(body.subarray(1)), signature);
}
