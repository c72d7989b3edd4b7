import type { Db } from "./db/client";
import type { Auth } from "./lib/auth";
import type { RunObject } from "./runs/run-object";

export type RunMessage = { run_id: string };

export type Env = {
  DB: D1Database;
  RUNS: DurableObjectNamespace<RunObject>;
  RUN_QUEUE: Queue<RunMessage>;
  /** Operator secret for /v1/admin/*; the admin routes answer 404 while it is unset. */
  ADMIN_TOKEN?: string;
};

export type AppEnv = {
  Bindings: Env;
  Variables: {
    db: Db;
    auth: Auth;
    requestId: string;
  };
};
