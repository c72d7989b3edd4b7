DROP INDEX `approvals_workspace`;--> statement-breakpoint
DROP INDEX `approvals_workspace_agent`;--> statement-breakpoint
DROP INDEX `approvals_workspace_type`;--> statement-breakpoint
DROP INDEX `approvals_identity`;--> statement-breakpoint
CREATE INDEX `approvals_workspace_order` ON `approvals` (`workspace_id`,`proposed_at`,`run_id`,`contact_id`,`action_index`);--> statement-breakpoint
CREATE INDEX `approvals_workspace_agent_order` ON `approvals` (`workspace_id`,`agent_id`,`proposed_at`,`run_id`,`contact_id`,`action_index`);--> statement-breakpoint
CREATE INDEX `approvals_workspace_type_order` ON `approvals` (`workspace_id`,`type`,`proposed_at`,`run_id`,`contact_id`,`action_index`);--> statement-breakpoint
CREATE INDEX `approvals_identity_queue` ON `approvals` (`identity_id`,`type`,`proposed_at`,`run_id`,`contact_id`,`action_index`);