import { describe, expect, it } from "vitest";
import { api, makeAgent, makeWorkspace } from "./helpers";

describe("smoke", () => {
  it("creates an agent", async () => {
    const { key } = await makeWorkspace();
    const agent = await makeAgent(key, { playbook_template: "cold_outreach", capabilities: undefined });
    expect(agent.playbook.steps).toHaveLength(3);
    const list = await api("/v1/agents", { key });
    expect(list.body.total).toBe(1);
    expect(Intl.DateTimeFormat("en-US", { timeZone: "Europe/Berlin" }).resolvedOptions().timeZone).toBe("Europe/Berlin");
  });
});
