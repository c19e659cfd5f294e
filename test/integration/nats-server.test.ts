import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { eventually } from "../harness/cluster";
import { NatsServer } from "../../deploy/nats-server";

/*
 * The nats-server the launcher and the tests start: its monitoring port
 * (unauthenticated; /connz?subs=1 lists every connection and subscription)
 * stays on loopback even when clients are served on every interface.
 */

/** Whether a TCP connection to host:port is accepted (false: refused). */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "ECONNREFUSED") resolve(false);
      else reject(e);
    });
  });
}

// 127.0.0.2 is this machine, but not 127.0.0.1: a port bound to every interface answers there, one bound to 127.0.0.1 does not.
const otherAddress = "127.0.0.2";

test("clients on every interface, monitoring on 127.0.0.1 only, restarts included", async () => {
  const wide = await NatsServer.start({ host: "0.0.0.0", jetstream: false });
  try {
    for (let round = 0; round < 2; round++) {
      expect(new URL(wide.monitorUrl).hostname).toBe("127.0.0.1");
      expect((await fetch(`${wide.monitorUrl}/connz?subs=1`)).status).toBe(200);
      expect(await connects(otherAddress, wide.port)).toBe(true);
      expect(await connects(otherAddress, wide.monitorPort)).toBe(false);
      if (round === 0) await wide.restart();
    }
  } finally {
    await wide.stop();
  }
}, 20_000);

test("monitorHost opens monitoring on another interface", async () => {
  const open = await NatsServer.start({ host: "0.0.0.0", monitorHost: "0.0.0.0", jetstream: false });
  try {
    expect(await connects(otherAddress, open.monitorPort)).toBe(true);
    expect((await fetch(`http://${otherAddress}:${open.monitorPort}/varz`)).status).toBe(200);
  } finally {
    await open.stop();
  }
}, 20_000);

test("a start that fails leaves no nats-server behind", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-nats-failed-"));
  try {
    // No time to listen at all: the start fails right after spawning a server.
    await expect(NatsServer.start({ dir, readyTimeoutMs: 0, jetstream: false })).rejects.toThrow(/did not listen/);
    const running = (): number[] => fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(dir);
      } catch {
        return false; // the process ended while we looked
      }
    }).map(Number);
    await eventually(() => running().length === 0, 5_000, "no nats-server of the failed start");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
