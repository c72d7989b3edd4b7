import type { Db } from "./db/client";
import type { Auth } from "./lib/auth";

export type Env = {
  DB: D1Database;
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
