import { KubernetesOrchestrator } from "./kubernetes";
import { LocalOrchestrator } from "./local";
import { EventsOnlyOrchestrator, type LaunchContext, type Orchestrator, type OrchestratorConfig } from "./orchestrator";

export * from "./orchestrator";
export { KubernetesOrchestrator, LocalOrchestrator };

export async function createOrchestrator(config: OrchestratorConfig, ctx: LaunchContext): Promise<Orchestrator> {
  switch (config.kind) {
    case "local": return new LocalOrchestrator(config, ctx);
    case "kubernetes": return KubernetesOrchestrator.create(config, ctx);
    case "events-only": return new EventsOnlyOrchestrator();
  }
}
