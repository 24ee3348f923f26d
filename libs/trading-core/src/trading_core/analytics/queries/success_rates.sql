-- Success and rejection rates per account and day: of the orders asked for (requests: submitted
-- to a venue, or DENIED by the platform's checks), how many the platform denied, how many a
-- venue rejected, how many were accepted and how many filled.
-- @day_start TIMESTAMP: the period's first instant (UTC); requests in [@day_start, @day_end)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
--
-- denial_rate: denied / requests. rejection_rate: rejected by a venue / submitted.
-- success_rate: (submitted - rejected) / requests, the requests a venue accepted.
-- fill_rate here: orders with at least one fill / submitted.
WITH requests AS (
  SELECT order_id, account_id, DATE(event_time) AS day, event_type = 'OrderDenied' AS denied
  FROM trading.orders
  WHERE event_type IN ('OrderSubmitted', 'OrderDenied')
    AND event_time >= @day_start AND event_time < @day_end
    AND (@account IS NULL OR account_id = @account)
),
rejected AS (
  SELECT DISTINCT order_id
  FROM trading.executions
  WHERE execution_type = 'REJECTED' AND event_time >= @day_start
),
filled AS (
  SELECT DISTINCT order_id FROM trading.fills WHERE event_time >= @day_start
),
outcomes AS (
  SELECT
    q.account_id, q.day, q.denied,
    r.order_id IS NOT NULL AS rejected,
    f.order_id IS NOT NULL AS filled
  FROM requests AS q
  LEFT JOIN rejected AS r ON r.order_id = q.order_id AND NOT q.denied
  LEFT JOIN filled AS f ON f.order_id = q.order_id AND NOT q.denied
)
SELECT
  account_id,
  day,
  COUNT(*) AS requests,
  COUNTIF(denied) AS denied,
  COUNTIF(NOT denied) AS submitted,
  COUNTIF(rejected) AS rejected,
  COUNTIF(filled) AS filled,
  SAFE_DIVIDE(COUNTIF(denied), COUNT(*)) AS denial_rate,
  SAFE_DIVIDE(COUNTIF(rejected), COUNTIF(NOT denied)) AS rejection_rate,
  SAFE_DIVIDE(COUNTIF(NOT denied) - COUNTIF(rejected), COUNT(*)) AS success_rate,
  SAFE_DIVIDE(COUNTIF(filled), COUNTIF(NOT denied)) AS fill_rate
FROM outcomes
GROUP BY account_id, day
ORDER BY account_id, day
