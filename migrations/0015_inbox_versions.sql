CREATE TABLE `inboxes` (
	`workspace_id` text PRIMARY KEY NOT NULL,
	`pending` integer NOT NULL,
	`version` integer NOT NULL
);
--> statement-breakpoint
-- `version` becomes a new random 53-bit number (exact in JavaScript) with each change a page of
-- the inbox shows: only equality is asked of it, and unlike a count it never comes round again,
-- not even after D1 restores the table to an earlier point.
--
-- An entry added to or removed from the inbox counts, and moves the version, in the statement
-- that does it, however it goes: a run object's mirror, or a run's deletion cascading to its
-- entries. (Entries are never written with INSERT OR REPLACE, whose deletions fire no trigger.)
CREATE TRIGGER `inbox_entry_added` AFTER INSERT ON `approvals`
BEGIN
  INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) VALUES (NEW.`workspace_id`, 1, random() >> 11)
    ON CONFLICT (`workspace_id`) DO UPDATE SET `pending` = `pending` + 1, `version` = random() >> 11;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_entry_removed` AFTER DELETE ON `approvals`
BEGIN
  UPDATE `inboxes` SET `pending` = `pending` - 1, `version` = random() >> 11 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
-- A pending email's estimated_send_at counts the send slots its sender's deliveries hold: those
-- not failed. A delivery that takes or frees one, or moves it to another day or sender, moves
-- the version; one that only goes from sending to sent, or hears from the provider, does not.
CREATE TRIGGER `inbox_delivery_added` AFTER INSERT ON `deliveries`
WHEN NEW.`identity_id` IS NOT NULL AND NEW.`status` <> 'failed'
BEGIN
  INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) VALUES (NEW.`workspace_id`, 0, random() >> 11)
    ON CONFLICT (`workspace_id`) DO UPDATE SET `version` = random() >> 11;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_delivery_moved` AFTER UPDATE OF `status`, `send_day`, `identity_id` ON `deliveries`
WHEN (OLD.`status` = 'failed') IS NOT (NEW.`status` = 'failed') OR OLD.`send_day` IS NOT NEW.`send_day` OR OLD.`identity_id` IS NOT NEW.`identity_id`
BEGIN
  UPDATE `inboxes` SET `version` = random() >> 11 WHERE `workspace_id` = NEW.`workspace_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_delivery_removed` AFTER DELETE ON `deliveries`
WHEN OLD.`identity_id` IS NOT NULL AND OLD.`status` <> 'failed'
BEGIN
  UPDATE `inboxes` SET `version` = random() >> 11 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
-- A sender's daily limit sets how many of its emails each day takes; a deleted sender's emails take the default.
CREATE TRIGGER `inbox_identity_limit` AFTER UPDATE OF `daily_limit` ON `identities`
WHEN OLD.`daily_limit` IS NOT NEW.`daily_limit`
BEGIN
  UPDATE `inboxes` SET `version` = random() >> 11 WHERE `workspace_id` = NEW.`workspace_id`;
END;
--> statement-breakpoint
CREATE TRIGGER `inbox_identity_removed` AFTER DELETE ON `identities`
BEGIN
  UPDATE `inboxes` SET `version` = random() >> 11 WHERE `workspace_id` = OLD.`workspace_id`;
END;
--> statement-breakpoint
INSERT INTO `inboxes` (`workspace_id`, `pending`, `version`) SELECT `workspace_id`, count(*), random() >> 11 FROM `approvals` GROUP BY `workspace_id`;
