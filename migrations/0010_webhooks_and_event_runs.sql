CREATE TABLE `event_match_requests` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`workspace_id` text NOT NULL,
	`contact_ids` text NOT NULL,
	`types` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `event_match_requests_created` ON `event_match_requests` (`created_at`);--> statement-breakpoint
CREATE TABLE `event_run_candidates` (
	`agent_id` text NOT NULL,
	`minute` integer NOT NULL,
	`contact_id` text NOT NULL,
	`matched_at` integer NOT NULL,
	PRIMARY KEY(`agent_id`, `minute`, `contact_id`),
	FOREIGN KEY (`agent_id`) REFERENCES `agents`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `event_run_candidates_minute` ON `event_run_candidates` (`minute`);--> statement-breakpoint
CREATE TABLE `webhook_attempts` (
	`endpoint_id` text NOT NULL,
	`event_id` text NOT NULL,
	`number` integer NOT NULL,
	`attempted_at` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	`status_code` integer,
	`response_excerpt` text,
	`error` text,
	PRIMARY KEY(`endpoint_id`, `event_id`, `number`),
	FOREIGN KEY (`endpoint_id`) REFERENCES `webhook_endpoints`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`event_id`) REFERENCES `webhook_events`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `webhook_deliveries` (
	`endpoint_id` text NOT NULL,
	`event_id` text NOT NULL,
	`workspace_id` text NOT NULL,
	`event_type` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`lease_until` integer,
	`enqueued` integer NOT NULL,
	`manual` integer NOT NULL,
	`last_error` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`endpoint_id`, `event_id`),
	FOREIGN KEY (`endpoint_id`) REFERENCES `webhook_endpoints`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`event_id`) REFERENCES `webhook_events`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_deliveries_unsent` ON `webhook_deliveries` (`enqueued`,`workspace_id`);--> statement-breakpoint
CREATE INDEX `webhook_deliveries_due` ON `webhook_deliveries` (`status`,`next_attempt_at`);--> statement-breakpoint
CREATE TABLE `webhook_endpoints` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`enabled` integer NOT NULL,
	`description` text,
	`secret` text NOT NULL,
	`previous_secret` text,
	`previous_secret_expires_at` integer,
	`disabled_reason` text,
	`failing_since` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_endpoints_workspace` ON `webhook_endpoints` (`workspace_id`,`id`);--> statement-breakpoint
CREATE TABLE `webhook_events` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`type` text NOT NULL,
	`data` text NOT NULL,
	`endpoint_id` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `webhook_events_workspace` ON `webhook_events` (`workspace_id`,`id`);--> statement-breakpoint
DROP INDEX `runs_agent_schedule_slot`;--> statement-breakpoint
CREATE UNIQUE INDEX `runs_agent_trigger_slot` ON `runs` (`agent_id`,`trigger`,`schedule_slot`);--> statement-breakpoint
-- Fan-out: each new event becomes one pending delivery per enabled endpoint that takes its
-- type (a test event: its one endpoint). ON CONFLICT DO NOTHING on the event skips this, so
-- an event copied twice is delivered once.
CREATE TRIGGER `webhook_events_fan_out` AFTER INSERT ON `webhook_events`
BEGIN
  INSERT INTO `webhook_deliveries` (`endpoint_id`, `event_id`, `workspace_id`, `event_type`, `status`, `attempts`, `next_attempt_at`, `enqueued`, `manual`, `created_at`, `updated_at`)
  SELECT `e`.`id`, NEW.`id`, NEW.`workspace_id`, NEW.`type`, 'pending', 0, NEW.`created_at`, 0, 0, NEW.`created_at`, NEW.`created_at`
  FROM `webhook_endpoints` `e`
  WHERE `e`.`workspace_id` = NEW.`workspace_id` AND `e`.`enabled` = 1
    AND CASE WHEN NEW.`endpoint_id` IS NOT NULL THEN `e`.`id` = NEW.`endpoint_id`
        ELSE EXISTS (SELECT 1 FROM json_each(`e`.`events`) WHERE `value` IN ('*', NEW.`type`)) END;
END;--> statement-breakpoint
-- contact.unsubscribed, from the one place every opt-out passes (the API's events, PATCH,
-- batch upserts, unsubscribe links and mail, complaints): the flag's move from 0 to 1.
-- Ids are `msg_` + the time in hex milliseconds + 80 random bits, as src/webhooks/events.ts makes them.
CREATE TRIGGER `contacts_unsubscribed_event` AFTER UPDATE OF `unsubscribed` ON `contacts`
WHEN OLD.`unsubscribed` = 0 AND NEW.`unsubscribed` = 1
BEGIN
  INSERT INTO `webhook_events` (`id`, `workspace_id`, `type`, `data`, `created_at`)
  SELECT 'msg_' || printf('%012X', `now`) || hex(randomblob(10)), NEW.`workspace_id`, 'contact.unsubscribed',
    json_object('contact_id', NEW.`id`, 'email', NEW.`email`, 'unsubscribed', json('true'),
      'unsubscribed_at', strftime('%Y-%m-%dT%H:%M:%fZ', `now` / 1000.0, 'unixepoch')),
    `now`
  FROM (SELECT CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS `now`);
END;--> statement-breakpoint
-- run.failed and run.cancelled for runs that never started: D1's own moves out of `queued`
-- (a cancel, a dead-lettered or never-delivered message). A run object's moves reach D1
-- through its mirror, which always raises mirror_seq, and are emitted by the object itself.
CREATE TRIGGER `runs_unstarted_event` AFTER UPDATE OF `status` ON `runs`
WHEN OLD.`status` = 'queued' AND NEW.`status` IN ('failed', 'cancelled') AND NEW.`mirror_seq` = OLD.`mirror_seq`
BEGIN
  INSERT INTO `webhook_events` (`id`, `workspace_id`, `type`, `data`, `created_at`)
  SELECT 'msg_' || printf('%012X', `now`) || hex(randomblob(10)), NEW.`workspace_id`, 'run.' || NEW.`status`,
    json_object('id', NEW.`id`, 'run_id', NEW.`id`, 'job_id', NEW.`job_id`, 'agent_id', NEW.`agent_id`, 'status', NEW.`status`,
      'trigger', NEW.`trigger`, 'contact_count', NEW.`contact_count`, 'counts', json(NEW.`counts`), 'usage', json(NEW.`usage`),
      'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
      'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
      'completed_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`completed_at` / 1000.0, 'unixepoch'), 'error', NEW.`error`),
    `now`
  FROM (SELECT CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS `now`);
END;
