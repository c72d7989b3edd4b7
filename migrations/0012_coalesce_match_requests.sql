ALTER TABLE `event_match_requests` ADD `claimed_at` integer;--> statement-breakpoint
CREATE INDEX `event_match_requests_waiting` ON `event_match_requests` (`workspace_id`,`claimed_at`);