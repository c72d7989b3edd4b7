CREATE TABLE `deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`action_key` text NOT NULL,
	`run_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`contact_id` text NOT NULL,
	`action_index` integer NOT NULL,
	`action_type` text NOT NULL,
	`identity_id` text,
	`channel` text NOT NULL,
	`params` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_action_key` ON `deliveries` (`action_key`);--> statement-breakpoint
CREATE INDEX `deliveries_workspace` ON `deliveries` (`workspace_id`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_workspace_run` ON `deliveries` (`workspace_id`,`run_id`,`id`);--> statement-breakpoint
CREATE TABLE `notes` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`contact_id` text NOT NULL,
	`body` text NOT NULL,
	`action_key` text,
	`run_id` text,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`contact_id`) REFERENCES `contacts`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `notes_action_key` ON `notes` (`action_key`);--> statement-breakpoint
CREATE INDEX `notes_contact` ON `notes` (`contact_id`,`id`);--> statement-breakpoint
CREATE TABLE `run_contacts` (
	`run_id` text NOT NULL,
	`position` integer NOT NULL,
	`contact_id` text NOT NULL,
	PRIMARY KEY(`run_id`, `position`),
	FOREIGN KEY (`run_id`) REFERENCES `runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `run_contacts_contact` ON `run_contacts` (`contact_id`,`run_id`);--> statement-breakpoint
CREATE TABLE `runs` (
	`id` text PRIMARY KEY NOT NULL,
	`job_id` text NOT NULL,
	`workspace_id` text NOT NULL,
	`agent_id` text NOT NULL,
	`status` text NOT NULL,
	`trigger` text NOT NULL,
	`contact_count` integer NOT NULL,
	`counts` text NOT NULL,
	`agent_snapshot` text NOT NULL,
	`error` text,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`completed_at` integer,
	`enqueued_at` integer NOT NULL,
	`enqueue_attempts` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`agent_id`) REFERENCES `agents`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `runs_agent` ON `runs` (`workspace_id`,`agent_id`,`id`);--> statement-breakpoint
CREATE INDEX `runs_agent_status` ON `runs` (`workspace_id`,`agent_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `runs_status_enqueued` ON `runs` (`status`,`enqueued_at`);