import fs from "node:fs";
import path from "node:path";
import { CredentialIssuer, Role } from "../bus/credentials";
import { createAccount, createOperator, encodeAccountJwt, encodeOperatorJwt, fromSeed } from "../bus/nats-jwt";
import { readPrivateFile, writePrivateFile } from "../lib/private-file";

/** Files of a cluster's authentication directory. */
const Files = {
  operatorSeed: "operator.nk",
  operatorJwt: "operator.jwt",
  systemSeed: "system-account.nk",
  systemJwt: "system-account.jwt",
  accountSeed: "account.nk",
  accountJwt: "account.jwt",
  signingSeed: "signing.nk",
  serverConfig: "nats-auth.conf",
} as const;

/**
 * A cluster's bus identities, in one directory (0700, every secret 0600): an
 * NATS operator, its system account, the cluster's account (JetStream on) and
 * a signing key of that account, from which every component's, operator's,
 * driver's and lambda's credential is minted. `nats-auth.conf` is what
 * nats-server must include to trust them (operator mode, memory resolver).
 *
 * @example
 *   const auth = ClusterAuth.open("/var/lib/pocket/auth");       // creates it the first time
 *   fs.appendFileSync("nats.conf", `include "${auth.serverConfigFile}"\n`);
 *   const shardCreds = auth.credsFile(Role.Shard, "s0");           // minted and written, 0600
 */
export class ClusterAuth {
  private constructor(readonly dir: string, readonly account: string, readonly issuer: CredentialIssuer) {}

  /** Opens the directory, creating every key and JWT in it when it holds none. */
  static open(dir: string): ClusterAuth {
    if (!fs.existsSync(path.join(dir, Files.signingSeed))) ClusterAuth.#create(dir);
    const account = fromSeed(Buffer.from(readPrivateFile(path.join(dir, Files.accountSeed)).trim())).getPublicKey();
    return new ClusterAuth(dir, account, CredentialIssuer.fromSeed(account, readPrivateFile(path.join(dir, Files.signingSeed))));
  }

  static #create(dir: string): void {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    const operator = createOperator();
    const system = createAccount();
    const account = createAccount();
    const signing = createAccount();
    const seed = (k: { getSeed(): Uint8Array }): string => `${Buffer.from(k.getSeed()).toString("utf8")}\n`;
    writePrivateFile(path.join(dir, Files.operatorSeed), seed(operator));
    writePrivateFile(path.join(dir, Files.systemSeed), seed(system));
    writePrivateFile(path.join(dir, Files.accountSeed), seed(account));
    writePrivateFile(path.join(dir, Files.signingSeed), seed(signing));
    const operatorJwt = encodeOperatorJwt(operator, "pocket", system.getPublicKey());
    const systemJwt = encodeAccountJwt(operator, system.getPublicKey(), "SYS");
    const accountJwt = encodeAccountJwt(operator, account.getPublicKey(), "POCKET", { signingKeys: [signing.getPublicKey()], jetstream: true });
    writePrivateFile(path.join(dir, Files.operatorJwt), `${operatorJwt}\n`);
    writePrivateFile(path.join(dir, Files.systemJwt), `${systemJwt}\n`);
    writePrivateFile(path.join(dir, Files.accountJwt), `${accountJwt}\n`);
    writePrivateFile(path.join(dir, Files.serverConfig), [
      "# Pocket's bus identities: nats-server trusts this operator and accepts only users its accounts signed.",
      `operator: "${operatorJwt}"`,
      `system_account: ${system.getPublicKey()}`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  ${system.getPublicKey()}: "${systemJwt}"`,
      `  ${account.getPublicKey()}: "${accountJwt}"`,
      "}",
      "",
    ].join("\n"));
  }

  /** The nats-server configuration lines that make a server trust this cluster's identities. */
  get serverConfigFile(): string { return path.join(this.dir, Files.serverConfig); }
  serverConfig(): string { return fs.readFileSync(this.serverConfigFile, "utf8"); }

  /** The signing key's seed file, for the controller (it mints lambda and node credentials). */
  get signingSeedFile(): string { return path.join(this.dir, Files.signingSeed); }

  /** Where one identity's creds file lives. */
  credsPath(role: Role, id: string): string {
    return path.join(this.dir, role === Role.Controller ? "controller.creds" : `${role}-${id}.creds`);
  }

  /** Mints a credential for `role` (`id`: shard, node, operator or driver name) and writes it 0600; returns its path. */
  credsFile(role: Exclude<Role, "lambda">, id: string): string {
    const file = this.credsPath(role, id);
    writePrivateFile(file, this.credentials(role, id));
    return file;
  }

  /** Mints a credential for `role` as creds text. */
  credentials(role: Exclude<Role, "lambda">, id: string): string {
    switch (role) {
      case Role.Controller: return this.issuer.controller();
      case Role.Shard: return this.issuer.shard(id);
      case Role.Node: return this.issuer.node(id);
      case Role.Operator: return this.issuer.operator(id);
      case Role.Driver: return this.issuer.driver(id);
    }
  }
}
