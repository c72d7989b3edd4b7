CREATE TABLE `approvals` (
	`run_id` text NOT NULL,
	`contact_id` text NOT NULL,
	`action_index` integer NOT NULL,
	`workspace_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`type` text NOT NULL,
	`identity_id` text,
	`send_window` text,
	`proposed_at` integer NOT NULL,
	`action` text NOT NULL,
	`contact` text NOT NULL,
	PRIMARY KEY(`run_id`, `contact_id`, `action_index`),
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `approvals_workspace` ON `approvals` (`workspace_id`,`proposed_at`);--> statement-breakpoint
CREATE INDEX `approvals_workspace_agent` ON `approvals` (`workspace_id`,`agent_id`,`proposed_at`);--> statement-breakpoint
CREATE INDEX `approvals_workspace_type` ON `approvals` (`workspace_id`,`type`,`proposed_at`);--> statement-breakpoint
CREATE INDEX `approvals_identity` ON `approvals` (`identity_id`,`type`,`proposed_at`);--> statement-breakpoint
-- Run events from D1's own moves carry `usage` as the run object's events do: an object, never null.
DROP TRIGGER `runs_unstarted_event`;--> statement-breakpoint
CREATE TRIGGER `runs_unstarted_event` AFTER UPDATE OF `status` ON `runs`
WHEN OLD.`status` = 'queued' AND NEW.`status` IN ('failed', 'cancelled') AND NEW.`mirror_seq` = OLD.`mirror_seq`
BEGIN
  INSERT INTO `webhook_events` (`id`, `workspace_id`, `type`, `data`, `created_at`)
  SELECT 'msg_' || printf('%012X', `now`) || hex(randomblob(10)), NEW.`workspace_id`, 'run.' || NEW.`status`,
    json_object('id', NEW.`id`, 'run_id', NEW.`id`, 'job_id', NEW.`job_id`, 'agent_id', NEW.`agent_id`, 'status', NEW.`status`,
      'trigger', NEW.`trigger`, 'contact_count', NEW.`contact_count`, 'counts', json(NEW.`counts`),
      'usage', coalesce(json(NEW.`usage`), json_object('proposals', 0, 'input_tokens', 0, 'output_tokens', 0)),
      'created_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`created_at` / 1000.0, 'unixepoch'),
      'started_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`started_at` / 1000.0, 'unixepoch'),
      'completed_at', strftime('%Y-%m-%dT%H:%M:%fZ', NEW.`completed_at` / 1000.0, 'unixepoch'), 'error', NEW.`error`),
    `now`
  FROM (SELECT CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS `now`);
END;
