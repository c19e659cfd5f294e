import { spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { InvalidArgumentError } from "../schemas/errors";
import { readPrivateFile, writePrivateFile } from "../lib/private-file";
import type { ServerTlsFiles } from "../bus/tls";

/** Files of a cluster's `tls/` directory (inside its auth directory), every one 0600. */
const Files = {
  caKey: "ca.key",
  caCert: "ca.pem",
  serverKey: "server.key",
  serverCert: "server.pem",
} as const;

/** Hosts every server certificate names, besides those asked for. */
const defaultHosts = ["127.0.0.1", "localhost"] as const;
const caDays = 3650;
const serverDays = 825;
/** A server certificate expiring sooner than this is issued again on open. */
const renewBeforeMs = 24 * 3600_000;
/** What one openssl invocation may take. */
const opensslTimeoutMs = 30_000;
const dnsName = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Path of the openssl command; throws with how to get it when missing. */
export function opensslBinary(env: NodeJS.ProcessEnv = process.env): string {
  const which = spawnSync("/bin/sh", ["-c", "command -v openssl"], { encoding: "utf8", env });
  const found = which.status === 0 ? which.stdout.trim() : "";
  if (found) return found;
  throw new Error("openssl not found: the cluster's TLS certificates are made with it. Install it (Debian: apt-get install openssl).");
}

/**
 * A cluster's TLS material, in the `tls/` folder of its auth directory: a CA
 * (ECDSA P-256, its key never leaves that folder) and one server certificate
 * it signed, for nats-server and every shard's and node's direct transport,
 * naming 127.0.0.1, localhost and any other host asked for. Clients verify
 * servers with the CA (`caFile`, or `POCKET_TLS_CA`). Made with `openssl`
 * the first time; opening it again reuses it, and issues a new server
 * certificate only when a host is added or the old one is about to expire.
 *
 * @example
 *   const tls = ClusterTls.open("/var/lib/pocket/auth", { hosts: ["10.0.0.5"] });
 *   await NatsServer.start({ tls: { certFile: tls.certFile, keyFile: tls.keyFile } });
 *   await PocketClient.connect({ servers, tlsCa: tls.ca() });
 */
export class ClusterTls {
  private constructor(readonly dir: string, readonly hosts: readonly string[]) {}

  /** Opens (creating when needed) the TLS folder under `authDir`; `hosts`: more names or addresses the servers are reached at. */
  static open(authDir: string, options: { readonly hosts?: readonly string[] } = {}): ClusterTls {
    const hosts = [...new Set([...defaultHosts, ...(options.hosts ?? [])])];
    for (const h of hosts) checkHost(h);
    const dir = path.join(authDir, "tls");
    const file = (name: string): string => path.join(dir, name);
    if (!fs.existsSync(file(Files.caCert)) || !fs.existsSync(file(Files.caKey))) {
      const openssl = opensslBinary();
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.chmodSync(dir, 0o700);
      newKey(openssl, file(Files.caKey));
      run(openssl, [
        "req", "-x509", "-new", "-key", file(Files.caKey), "-sha256", "-days", String(caDays), "-subj", "/CN=Pocket cluster CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", file(Files.caCert),
      ]);
      fs.chmodSync(file(Files.caCert), 0o600);
      fs.rmSync(file(Files.serverCert), { force: true });
    }
    const existing = fs.existsSync(file(Files.serverCert)) && fs.existsSync(file(Files.serverKey))
      ? new X509Certificate(readPrivateFile(file(Files.serverCert))) : undefined;
    const ca = new X509Certificate(readPrivateFile(file(Files.caCert)));
    if (!existing || !covers(existing, ca, hosts)) {
      // Keep the hosts the old certificate named: servers already reached at them stay reachable.
      const named = existing ? [...new Set([...hosts, ...namesOf(existing)])] : hosts;
      issueServer(opensslBinary(), dir, named);
      return new ClusterTls(dir, named);
    }
    return new ClusterTls(dir, [...new Set([...hosts, ...namesOf(existing)])]);
  }

  /** The CA certificate (PEM): what clients verify servers with. */
  get caFile(): string { return path.join(this.dir, Files.caCert); }
  /** The servers' certificate (PEM) and its private key. */
  get certFile(): string { return path.join(this.dir, Files.serverCert); }
  get keyFile(): string { return path.join(this.dir, Files.serverKey); }

  ca(): string { return readPrivateFile(this.caFile); }
  cert(): string { return readPrivateFile(this.certFile); }
  key(): string { return readPrivateFile(this.keyFile); }

  /** What a server is configured with: its certificate and key files. */
  get server(): ServerTlsFiles {
    return { certFile: this.certFile, keyFile: this.keyFile };
  }
}

function checkHost(host: string): void {
  if (net.isIP(host) === 0 && !dnsName.test(host)) {
    throw new InvalidArgumentError(`TLS host ${JSON.stringify(host.slice(0, 64))} is neither an IP address nor a DNS name`);
  }
}

/** Whether `cert` was signed by `ca`, names every host and is not about to expire. */
function covers(cert: X509Certificate, ca: X509Certificate, hosts: readonly string[]): boolean {
  if (!cert.verify(ca.publicKey)) return false;
  if (Date.parse(cert.validTo) - Date.now() < renewBeforeMs) return false;
  return hosts.every((h) => (net.isIP(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
}

/** The hosts a certificate's subjectAltName names. */
function namesOf(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "").split(",").map((s) => s.trim())
    .map((s) => s.replace(/^DNS:/, "").replace(/^IP Address:/, ""))
    .filter((h) => h.length > 0 && (net.isIP(h) !== 0 || dnsName.test(h)));
}

function issueServer(openssl: string, dir: string, hosts: readonly string[]): void {
  const file = (name: string): string => path.join(dir, name);
  const stamp = `${process.pid}.${randomBytes(4).toString("hex")}`;
  const csr = file(`server.${stamp}.csr`);
  const ext = file(`server.${stamp}.ext`);
  const key = file(`server.${stamp}.key`);
  const cert = file(`server.${stamp}.pem`);
  const san = hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  try {
    newKey(openssl, key);
    run(openssl, ["req", "-new", "-key", key, "-subj", "/CN=pocket", "-out", csr]);
    writePrivateFile(ext, [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
      "",
    ].join("\n"));
    run(openssl, [
      "x509", "-req", "-in", csr, "-CA", file(Files.caCert), "-CAkey", file(Files.caKey), "-set_serial", `0x${randomBytes(16).toString("hex")}`,
      "-days", String(serverDays), "-sha256", "-extfile", ext, "-out", cert,
    ]);
    fs.chmodSync(cert, 0o600);
    // The key first: a reader that finds the new certificate finds its key.
    fs.renameSync(key, file(Files.serverKey));
    fs.renameSync(cert, file(Files.serverCert));
  } finally {
    for (const f of [csr, ext, key, cert]) fs.rmSync(f, { force: true });
  }
}

/** A new P-256 private key, 0600 from the start. */
function newKey(openssl: string, file: string): void {
  writePrivateFile(file, "");
  run(openssl, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file]);
  fs.chmodSync(file, 0o600);
}

function run(openssl: string, args: readonly string[]): void {
  const r = spawnSync(openssl, args, { encoding: "utf8", timeout: opensslTimeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  if (r.error) throw new Error(`openssl ${args[0]} failed: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} exited with ${r.status ?? r.signal}: ${r.stderr.trim().slice(0, 500)}`);
}
