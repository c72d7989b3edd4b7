-- D1's own event triggers write only while the workspace has an enabled webhook endpoint, as
-- the run objects' copies already do (src/webhooks/dispatch.ts insertEvents): nobody else
-- would receive them.
DROP TRIGGER `contacts_unsubscribed_event`;--> statement-breakpoint
CREATE TRIGGER `contacts_unsubscribed_event` AFTER UPDATE OF `unsubscribed` ON `contacts`
WHEN OLD.`unsubscribed` = 0 AND NEW.`unsubscribed` = 1
  AND EXISTS (SELECT 1 FROM `webhook_endpoints` WHERE `workspace_id` = NEW.`workspace_id` AND `enabled` = 1)
BEGIN
  INSERT INTO `webhook_events` (`id`, `workspace_id`, `type`, `data`, `created_at`)
  SELECT 'msg_' || printf('%012X', `now`) || hex(randomblob(10)), NEW.`workspace_id`, 'contact.unsubscribed',
    json_object('contact_id', NEW.`id`, 'email', NEW.`email`, 'unsubscribed', json('true'),
      'unsubscribed_at', strftime('%Y-%m-%dT%H:%M:%fZ', `now` / 1000.0, 'unixepoch')),
    `now`
  FROM (SELECT CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS `now`);
END;--> statement-breakpoint
DROP TRIGGER `runs_unstarted_event`;--> statement-breakpoint
CREATE TRIGGER `runs_unstarted_event` AFTER UPDATE OF `status` ON `runs`
WHEN OLD.`status` = 'queued' AND NEW.`status` IN ('failed', 'cancelled') AND NEW.`mirror_seq` = OLD.`mirror_seq`
  AND EXISTS (SELECT 1 FROM `webhook_endpoints` WHERE `workspace_id` = NEW.`workspace_id` AND `enabled` = 1)
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
