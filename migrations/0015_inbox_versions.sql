CREATE TABLE `inboxes` (
	`workspace_id` text PRIMARY KEY NOT NULL,
	`pending` integer NOT NULL,
	`version` integer NOT NULL
);
--> statement-breakpoint
-- An entry added to or removed from the inbox counts, and moves its version, in the statement
-- that does it, however it goes: a run object's mirror, or a run's deletion cascading to its entries.
CREATE TRIGGER `inbox_entry_added` AFTER INSERT ON `approvals`
BEGIN
  INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) VALUES (NEW.`workspace_id`, 1, 1)
    ON CONFLICT (`workspace_id`) DO UPDATE SET `pending` = `pending` + 1, `version` = `version` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_entry_removed` AFTER DELETE ON `approvals`
BEGIN
  UPDATE `inboxes` SET `pending` = `pending` - 1, `version` = `version` + 1 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
-- Deliveries hold send slots, which pending emails' estimated_send_at counts.
CREATE TRIGGER `inbox_delivery_added` AFTER INSERT ON `deliveries`
BEGIN
  INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) VALUES (NEW.`workspace_id`, 0, 1)
    ON CONFLICT (`workspace_id`) DO UPDATE SET `version` = `version` + 1;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_delivery_moved` AFTER UPDATE OF `status`, `send_day`, `identity_id` ON `deliveries`
WHEN OLD.`status` IS NOT NEW.`status` OR OLD.`send_day` IS NOT NEW.`send_day` OR OLD.`identity_id` IS NOT NEW.`identity_id`
BEGIN
  UPDATE `inboxes` SET `version` = `version` + 1 WHERE `workspace_id` = NEW.`workspace_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_delivery_removed` AFTER DELETE ON `deliveries`
BEGIN
  UPDATE `inboxes` SET `version` = `version` + 1 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
-- A sender's daily limit sets how many of its emails each day takes.
CREATE TRIGGER `inbox_identity_limit` AFTER UPDATE OF `daily_limit` ON `identities`
WHEN OLD.`daily_limit` IS NOT NEW.`daily_limit`
BEGIN
  UPDATE `inboxes` SET `version` = `version` + 1 WHERE `workspace_id` = NEW.`workspace_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_identity_removed` AFTER DELETE ON `identities`
BEGIN
  UPDATE `inboxes` SET `version` = `version` + 1 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) SELECT `workspace_id`, count(*), 1 FROM `approvals` GROUP BY `workspace_id`;
