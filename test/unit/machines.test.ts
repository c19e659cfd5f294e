import { JobState, NodeState, jobStateOf, newJobLife, newNodeLife, nodeStateOf, restoreNodeLife, stepJob, stepNode } from "../../actors/controller/machines";

const timeouts = { silenceMs: 3_000, launchTimeoutMs: 10_000 };

describe("storage node lifecycle", () => {
  test("provisioning → active on its first heartbeat → draining → removed when empty", () => {
    let s = newNodeLife(timeouts, 0);
    expect(nodeStateOf(s)).toBe(NodeState.Provisioning);
    s = stepNode(s, { type: "heartbeat", atMs: 1_500 });
    expect(nodeStateOf(s)).toBe(NodeState.Active);
    s = stepNode(s, { type: "drain", atMs: 2_000, deadlineMs: 60_000 });
    expect(nodeStateOf(s)).toBe(NodeState.Draining);
    expect(s.context.drainDeadlineMs).toBe(60_000);
    s = stepNode(s, { type: "empty", atMs: 3_000 });
    expect(nodeStateOf(s)).toBe(NodeState.Removed);
    expect(s.status).toBe("done");
  });

  test("failed only once the silence exceeds the limit, on a tick; back to active when heard again", () => {
    let s = stepNode(newNodeLife(timeouts, 0), { type: "heartbeat", atMs: 1_000 });
    s = stepNode(s, { type: "tick", atMs: 4_000 });
    expect(nodeStateOf(s)).toBe(NodeState.Active);
    s = stepNode(s, { type: "tick", atMs: 4_001 });
    expect(nodeStateOf(s)).toBe(NodeState.Failed);
    s = stepNode(s, { type: "heartbeat", atMs: 9_000 });
    expect(nodeStateOf(s)).toBe(NodeState.Active);
  });

  test("a launch that never reports fails at its timeout; an active node cannot be removed without draining", () => {
    let s = stepNode(newNodeLife(timeouts, 0), { type: "tick", atMs: 10_001 });
    expect(nodeStateOf(s)).toBe(NodeState.Failed);
    let a = stepNode(newNodeLife(timeouts, 0), { type: "heartbeat", atMs: 1 });
    a = stepNode(a, { type: "remove", atMs: 2 });
    expect(nodeStateOf(a)).toBe(NodeState.Active);
    s = stepNode(s, { type: "remove", atMs: 10_002 });
    expect(nodeStateOf(s)).toBe(NodeState.Removed);
  });

  test("restored from stored fields, it carries on", () => {
    const s = restoreNodeLife(NodeState.Draining, { ...timeouts, lastSeenMs: 5_000, stateSinceMs: 4_000, drainDeadlineMs: 9_000 });
    expect(nodeStateOf(stepNode(s, { type: "tick", atMs: 8_001 }))).toBe(NodeState.Failed);
    expect(nodeStateOf(stepNode(s, { type: "empty", atMs: 6_000 }))).toBe(NodeState.Removed);
  });
});

describe("job lifecycle", () => {
  test("registered → active on use; renewals push the lease; expired when it runs out", () => {
    let s = newJobLife(0, 10_000);
    expect(jobStateOf(s)).toBe(JobState.Registered);
    s = stepJob(s, { type: "renew", atMs: 5_000 });
    expect(s.context.leaseExpiresAtMs).toBe(15_000);
    s = stepJob(s, { type: "used", atMs: 6_000 });
    expect(jobStateOf(s)).toBe(JobState.Active);
    s = stepJob(s, { type: "tick", atMs: 15_999 });
    expect(jobStateOf(s)).toBe(JobState.Active);
    s = stepJob(s, { type: "tick", atMs: 16_000 });
    expect(jobStateOf(s)).toBe(JobState.Expired);
    expect(stepJob(s, { type: "renew", atMs: 16_001 }).context.leaseExpiresAtMs).toBe(16_000);
  });

  test("deregistration ends it for good", () => {
    let s = stepJob(newJobLife(0, 10_000), { type: "deregister", atMs: 1_000 });
    expect(jobStateOf(s)).toBe(JobState.Ended);
    s = stepJob(s, { type: "tick", atMs: 100_000 });
    expect(jobStateOf(s)).toBe(JobState.Ended);
  });
});
