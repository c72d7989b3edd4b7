CREATE TABLE `contacts` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`email` text NOT NULL,
	`email_key` text NOT NULL,
	`first_name` text,
	`last_name` text,
	`company` text,
	`job_title` text,
	`lifecycle_stage` text,
	`linkedin_url` text,
	`timezone` text,
	`properties` text NOT NULL,
	`unsubscribed` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_contacted_at` integer,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `contacts_workspace_email` ON `contacts` (`workspace_id`,`email_key`);--> statement-breakpoint
CREATE INDEX `contacts_workspace_id` ON `contacts` (`workspace_id`,`id`);--> statement-breakpoint
CREATE INDEX `contacts_workspace_stage` ON `contacts` (`workspace_id`,`lifecycle_stage`,`id`);--> statement-breakpoint
CREATE INDEX `contacts_workspace_unsubscribed` ON `contacts` (`workspace_id`,`unsubscribed`,`id`);--> statement-breakpoint
CREATE INDEX `contacts_workspace_created` ON `contacts` (`workspace_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `contacts_workspace_contacted` ON `contacts` (`workspace_id`,`last_contacted_at`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`contact_id` text NOT NULL,
	`type` text NOT NULL,
	`url` text,
	`properties` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`contact_id`) REFERENCES `contacts`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `events_contact_time` ON `events` (`contact_id`,`occurred_at`);--> statement-breakpoint
CREATE INDEX `events_contact_type_time` ON `events` (`contact_id`,`type`,`occurred_at`);--> statement-breakpoint
CREATE INDEX `events_workspace_type_time` ON `events` (`workspace_id`,`type`,`occurred_at`);--> statement-breakpoint
CREATE TABLE `identities` (
	`id` text PRIMARY KEY NOT NULL,
	`workspace_id` text NOT NULL,
	`first_name` text NOT NULL,
	`last_name` text,
	`role` text,
	`email_address` text,
	`linkedin_url` text,
	`daily_limit` integer NOT NULL,
	`send_window` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`workspace_id`) REFERENCES `workspaces`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `identities_workspace_id` ON `identities` (`workspace_id`,`id`);