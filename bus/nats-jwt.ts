import { createHash } from "node:crypto";
import { base32Encode, newNkey, nkeyFromSeed, nkeyVerify, type Nkey } from "./nkeys";

type KeyPair = Nkey;

/**
 * NATS decentralized authentication (operator mode, nats-server 2.2+): the
 * JWTs an operator, an account and its users are described by, signed with
 * nkeys (Ed25519). The server trusts the operator; the operator signs
 * accounts; an account (or one of its signing keys) signs users, each with
 * its own subject permissions. The server checks a user's JWT against the
 * account on every connect, so users can be minted without touching the
 * server.
 *
 * @example
 *   const op = createOperator(); const acc = createAccount(); const sk = createAccount();
 *   const accountJwt = encodeAccountJwt(op, acc.getPublicKey(), "POCKET", { signingKeys: [sk.getPublicKey()] });
 *   const user = newNkey("user");
 *   const userJwt = encodeUserJwt(sk, acc.getPublicKey(), user.getPublicKey(), "lambda", { pub: ["pocket.x.>"], sub: ["_INBOX.x.>"] });
 *   formatCreds(userJwt, user.getSeed());
 */

/** Subjects a user may publish to and subscribe to; `responses` lets it reply to requests it received. */
export interface UserPermissions {
  readonly pub: readonly string[];
  readonly sub: readonly string[];
  readonly pubDeny?: readonly string[];
  readonly subDeny?: readonly string[];
  /** Replies allowed to requests received (nats `resp`): at most this many per request. */
  readonly responses?: { readonly max: number; readonly ttlMs?: number };
}

const header = Buffer.from(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })).toString("base64url");

/** Signs claims as a NATS JWT: `header.claims.signature`, base64url, `jti` the SHA-512/256 of the claims. */
function sign(signer: KeyPair, claims: Record<string, unknown>): string {
  const withoutId = { ...claims, jti: "" };
  const jti = base32Encode(createHash("sha512-256").update(JSON.stringify(withoutId)).digest());
  const body = Buffer.from(JSON.stringify({ ...claims, jti })).toString("base64url");
  const sig = Buffer.from(signer.sign(Buffer.from(`${header}.${body}`))).toString("base64url");
  return `${header}.${body}.${sig}`;
}

const nowSeconds = (nowMs: number): number => Math.floor(nowMs / 1000);

/** The operator's self-signed JWT; names the system account. */
export function encodeOperatorJwt(operator: KeyPair, name: string, systemAccount: string, nowMs = Date.now()): string {
  return sign(operator, {
    iat: nowSeconds(nowMs), iss: operator.getPublicKey(), sub: operator.getPublicKey(), name,
    nats: { system_account: systemAccount, type: "operator", version: 2 },
  });
}

export interface AccountOptions {
  /** Keys that may sign this account's users (so the account's own key can stay put away). */
  readonly signingKeys?: readonly string[];
  /** Enable JetStream for the account (unlimited within the server's own limits). */
  readonly jetstream?: boolean;
}

/** An account's JWT, signed by the operator. */
export function encodeAccountJwt(operator: KeyPair, account: string, name: string, options: AccountOptions = {}, nowMs = Date.now()): string {
  const js = options.jetstream ?? false;
  return sign(operator, {
    iat: nowSeconds(nowMs), iss: operator.getPublicKey(), sub: account, name,
    nats: {
      limits: {
        subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1,
        mem_storage: js ? -1 : 0, disk_storage: js ? -1 : 0, streams: js ? -1 : 0, consumer: js ? -1 : 0,
      },
      ...(options.signingKeys?.length ? { signing_keys: [...options.signingKeys] } : {}),
      default_permissions: { pub: {}, sub: {} },
      type: "account", version: 2,
    },
  });
}

/** A user's JWT, signed by its account's key or one of the account's signing keys. */
export function encodeUserJwt(
  signer: KeyPair, account: string, user: string, name: string, permissions: UserPermissions,
  options: { readonly expiresAtMs?: number; readonly nowMs?: number } = {},
): string {
  const nowMs = options.nowMs ?? Date.now();
  const signedByAccount = signer.getPublicKey() === account;
  const perm = (allow: readonly string[], deny: readonly string[] | undefined): Record<string, string[]> => ({
    ...(allow.length ? { allow: [...allow] } : {}),
    ...(deny?.length ? { deny: [...deny] } : {}),
  });
  return sign(signer, {
    iat: nowSeconds(nowMs), iss: signer.getPublicKey(), sub: user, name,
    ...(options.expiresAtMs !== undefined ? { exp: nowSeconds(options.expiresAtMs) } : {}),
    nats: {
      pub: perm(permissions.pub, permissions.pubDeny),
      sub: perm(permissions.sub, permissions.subDeny),
      ...(permissions.responses ? { resp: { max: permissions.responses.max, ttl: (permissions.responses.ttlMs ?? 0) * 1_000_000 } } : {}),
      subs: -1, data: -1, payload: -1,
      ...(signedByAccount ? {} : { issuer_account: account }),
      type: "user", version: 2,
    },
  });
}

/** The `.creds` file nats clients read: the user's JWT and its nkey seed. Keep it 0600. */
export function formatCreds(userJwt: string, seed: Uint8Array): string {
  return [
    "-----BEGIN NATS USER JWT-----", userJwt, "------END NATS USER JWT------", "",
    "************************* IMPORTANT *************************",
    "NKEY Seed printed below can be used to sign and prove identity.",
    "NKEYs are sensitive and should be treated as secrets.", "",
    "-----BEGIN USER NKEY SEED-----", Buffer.from(seed).toString("utf8"), "------END USER NKEY SEED------", "",
    "*************************************************************", "",
  ].join("\n");
}

/** Claims of a JWT, unchecked (for tools and tests that read what was issued). */
export function decodeJwtClaims(jwt: string): Record<string, unknown> {
  const body = jwt.split(".")[1];
  if (!body) throw new Error("not a JWT");
  return JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Record<string, unknown>;
}

/** Checks a JWT's signature against its issuer's public key. */
export function jwtSignedBy(jwt: string, issuer: string): boolean {
  const [h, b, s] = jwt.split(".");
  if (!h || !b || !s) return false;
  return nkeyVerify(issuer, Buffer.from(`${h}.${b}`), Buffer.from(s, "base64url"));
}

/** Mints a user: a fresh nkey and its JWT, as creds file text. */
export function mintUserCreds(signer: KeyPair, account: string, name: string, permissions: UserPermissions, expiresAtMs?: number): string {
  const user = newNkey("user");
  return formatCreds(encodeUserJwt(signer, account, user.getPublicKey(), name, permissions, { expiresAtMs }), user.getSeed());
}

export const createOperator = (): Nkey => newNkey("operator");
export const createAccount = (): Nkey => newNkey("account");
export const createUser = (): Nkey => newNkey("user");
export const fromSeed = (seed: Uint8Array | string): Nkey => nkeyFromSeed(typeof seed === "string" ? seed : Buffer.from(seed).toString("utf8"));
export type { KeyPair };

/** The user JWT inside creds file text. */
export function jwtOfCreds(creds: string): string {
  const m = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.=-]+)\s*-+END NATS USER JWT-+/.exec(creds);
  if (!m?.[1]) throw new Error("not a NATS creds file: no user JWT in it");
  return m[1];
}

/**
 * The inbox prefix a credential allows (`_INBOX.<who>` from its subscribe
 * permissions), so a client connects with the one inbox it may read.
 */
export function inboxOfCreds(creds: string): string | undefined {
  const claims = decodeJwtClaims(jwtOfCreds(creds)) as { nats?: { sub?: { allow?: unknown } } };
  const allow = claims.nats?.sub?.allow;
  if (!Array.isArray(allow)) return undefined;
  const inbox = allow.find((s): s is string => typeof s === "string" && s.startsWith("_INBOX.") && s.endsWith(".>"));
  return inbox?.slice(0, -2);
}
