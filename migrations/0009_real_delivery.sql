ALTER TABLE `deliveries` ADD `transport` text DEFAULT 'outbox' NOT NULL;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `status` text DEFAULT 'sent' NOT NULL;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `message_id` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `provider_message_id` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `send_day` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `error` text;--> statement-breakpoint
ALTER TABLE `deliveries` ADD `updated_at` integer;--> statement-breakpoint
CREATE INDEX `deliveries_identity_day` ON `deliveries` (`identity_id`,`send_day`,`status`);--> statement-breakpoint
CREATE INDEX `deliveries_message_id` ON `deliveries` (`message_id`);--> statement-breakpoint
CREATE INDEX `deliveries_provider_message` ON `deliveries` (`provider_message_id`);--> statement-breakpoint
-- A contact counts as contacted when an email or LinkedIn message is handed on, not when a
-- later day's slot is only held for it under the daily limit (status `scheduled`).
DROP TRIGGER `deliveries_mark_contacted`;--> statement-breakpoint
CREATE TRIGGER `deliveries_mark_contacted` AFTER INSERT ON `deliveries`
WHEN NEW.`channel` IN ('email', 'linkedin') AND NEW.`status` <> 'scheduled'
BEGIN
  UPDATE `contacts` SET `last_contacted_at` = NEW.`created_at` WHERE `id` = NEW.`contact_id`;
END;--> statement-breakpoint
CREATE TRIGGER `deliveries_mark_contacted_when_due` AFTER UPDATE OF `status` ON `deliveries`
WHEN OLD.`status` = 'scheduled' AND NEW.`status` IN ('sending', 'sent')
BEGIN
  UPDATE `contacts` SET `last_contacted_at` = NEW.`updated_at` WHERE `id` = NEW.`contact_id`;
END;
