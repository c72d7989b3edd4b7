import type { McpServer } from "@modelcontextprotocol/server";
import { z } from "zod";
import { ListAgentsQuery } from "../schemas/agents";
import { type Approval, ListApprovalsQuery } from "../schemas/approvals";
import { BatchContactsBody, ListContactsQuery } from "../schemas/contacts";
import { CreateEventsBody } from "../schemas/events";
import { ListIdentitiesQuery } from "../schemas/identities";
import { ApproveBody, ListRunsQuery, RejectBody, RunViewQuery, TriggerBody } from "../schemas/runs";
import { query, type RestCall, segment, toResult } from "./rest";

// Every tool is its REST route, called as the MCP caller: the route's own schema, scope
// check and workspace apply, so a tool can do nothing its key could not do over REST.

const Id = z.string().min(1).max(64);
const AgentId = { agent_id: Id.meta({ description: "The agent's id (agt_...)" }) };
const RunId = { run_id: Id.meta({ description: "The run's id (run_...)" }) };
const ActionIds = {
  ...RunId,
  contact_id: Id.meta({ description: "The contact's id (ct_...)" }),
  action_index: z.int().min(0).max(9999).meta({ description: "The action's index in the contact's sequence" }),
};

const actionPath = ({ run_id, contact_id, action_index }: { run_id: string; contact_id: string; action_index: number }, decision: string) =>
  `/v1/agents/runs/${segment(run_id)}/contacts/${segment(contact_id)}/actions/${action_index}/${decision}`;

type ApprovalEntry = z.output<typeof Approval>;

/** GET /v1/approvals, answered grouped by agent, each group named after its agent. */
async function reviewPending(call: RestCall, args: z.output<typeof ListApprovalsQuery>) {
  const res = await call("GET", `/v1/approvals${query(args)}`);
  if (res.status >= 400) return toResult(res);
  const groups = new Map<string, object[]>();
  for (const entry of res.body.approvals as ApprovalEntry[]) {
    const { action } = entry;
    const pending = groups.get(entry.agent_id) ?? groups.set(entry.agent_id, []).get(entry.agent_id)!;
    pending.push({
      run_id: entry.run_id,
      contact_id: entry.contact_id,
      action_index: entry.action_index,
      contact: entry.contact,
      type: action.type,
      params: action.params,
      digest: action.digest,
      reasoning: action.reasoning,
      estimated_send_at: action.estimated_send_at,
      proposed_at: action.proposed_at,
    });
  }
  const agents = await Promise.all(
    [...groups].map(async ([agentId, pending]) => {
      const agent = await call("GET", `/v1/agents/${segment(agentId)}`);
      const name = agent.status === 200 ? (agent.body.agent as { name: string }).name : null;
      return { agent_id: agentId, name, pending };
    }),
  );
  const { total, limit, offset } = res.body;
  return toResult({ status: 200, body: { status: "success", agents, total, limit, offset } });
}

/** Registers Cairn's twelve tools on `server`, each answering through `call`. */
export function registerTools(server: McpServer, call: RestCall): void {
  server.registerTool("list_agents", { description: "List the workspace's agents, newest first (agents:read)", inputSchema: ListAgentsQuery }, async (args) =>
    toResult(await call("GET", `/v1/agents${query(args)}`)),
  );
  server.registerTool("get_agent", { description: "Get one agent with its playbook (agents:read)", inputSchema: z.strictObject(AgentId) }, async ({ agent_id }) =>
    toResult(await call("GET", `/v1/agents/${segment(agent_id)}`)),
  );
  server.registerTool(
    "trigger_agent",
    { description: "Start a run of an agent for some contacts, or those its monitoring filter picks (agents:trigger)", inputSchema: TriggerBody.extend(AgentId) },
    async ({ agent_id, ...body }) => toResult(await call("POST", `/v1/agents/${segment(agent_id)}/trigger`, body)),
  );
  server.registerTool("list_runs", { description: "List an agent's runs, newest first (agents:read)", inputSchema: ListRunsQuery.extend(AgentId) }, async ({ agent_id, ...args }) =>
    toResult(await call("GET", `/v1/agents/${segment(agent_id)}/runs${query(args)}`)),
  );
  server.registerTool(
    "get_run",
    { description: "Get a run with one page of its contacts and their actions (agents:read)", inputSchema: RunViewQuery.extend(RunId) },
    async ({ run_id, ...args }) => toResult(await call("GET", `/v1/agents/runs/${segment(run_id)}${query(args)}`)),
  );
  server.registerTool(
    "review_pending_actions",
    {
      description: "Actions waiting for approval, oldest first, grouped by agent: each with its contact, params, digest, reasoning and estimated send time (agents:read)",
      inputSchema: ListApprovalsQuery,
    },
    async (args) => reviewPending(call, args),
  );
  server.registerTool(
    "approve_action",
    { description: "Approve a pending action, optionally editing its params; pass the digest you reviewed (agents:approve)", inputSchema: ApproveBody.extend(ActionIds) },
    async ({ run_id, contact_id, action_index, ...body }) => toResult(await call("POST", actionPath({ run_id, contact_id, action_index }, "approve"), body)),
  );
  server.registerTool(
    "reject_action",
    { description: "Reject a pending action; the contact's sequence ends (agents:approve)", inputSchema: RejectBody.extend(ActionIds) },
    async ({ run_id, contact_id, action_index, ...body }) => toResult(await call("POST", actionPath({ run_id, contact_id, action_index }, "reject"), body)),
  );
  server.registerTool("list_contacts", { description: "List or search contacts, newest first (contacts:read)", inputSchema: ListContactsQuery }, async (args) =>
    toResult(await call("GET", `/v1/contacts${query(args)}`)),
  );
  server.registerTool("upsert_contacts", { description: "Create or update up to 1000 contacts by email, all or none (contacts:write)", inputSchema: BatchContactsBody }, async (body) =>
    toResult(await call("POST", "/v1/contacts/batch", body)),
  );
  server.registerTool("record_events", { description: "Record 1-100 contact events, all or none (events:write)", inputSchema: CreateEventsBody }, async (body) =>
    toResult(await call("POST", "/v1/events", body)),
  );
  server.registerTool("list_identities", { description: "List the sending identities, newest first (identities:read)", inputSchema: ListIdentitiesQuery }, async (args) =>
    toResult(await call("GET", `/v1/identities${query(args)}`)),
  );
}
