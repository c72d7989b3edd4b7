import type { Env } from "../env";
import type { RunObject } from "./run-object";

type RunMethods = "start" | "view" | "approve" | "reject" | "decideMany" | "stopContacts" | "contactsChanged" | "cancel" | "destroy";

/** The run object's RPC surface as the Worker sees it: every method answers a promise. */
export type RunApi = {
  [K in RunMethods]: (...args: Parameters<RunObject[K]>) => Promise<Awaited<ReturnType<RunObject[K]>>>;
};

/**
 * The stub of a run's Durable Object, typed by the class itself rather than through
 * workers-types' deep RPC mapping (which gives up on recursive JSON types).
 */
export const runStub = (env: Env, runId: string) => env.RUNS.getByName(runId) as unknown as RunApi;
