ALTER TABLE `runs` ADD `schedule_slot` integer;--> statement-breakpoint
CREATE UNIQUE INDEX `runs_agent_schedule_slot` ON `runs` (`agent_id`,`schedule_slot`);--> statement-breakpoint
CREATE INDEX `deliveries_contact_agent_time` ON `deliveries` (`contact_id`,`agent_id`,`created_at`);--> statement-breakpoint
-- Agents stored before monitoring.cooldown_days existed get its default, so they echo it and the cooldown holds for them too.
UPDATE `agents` SET `monitoring` = json_set(`monitoring`, '$.cooldown_days', 30) WHERE json_type(`monitoring`, '$.cooldown_days') IS NULL;
