-- Execution quality per order: latency from submit to the venue's acceptance, to the first and to
-- the last fill; fill rate; slippage, fees and implementation shortfall against the arrival mid.
-- One row per order submitted in the period (orders DENIED by the platform are in success_rates).
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
--
-- accept: the order's first venue report that is not a rejection (ACCEPTED, or a fill when the
-- venue reported none before). Latencies in milliseconds from the submit (order-management's
-- OrderSubmitted). slippage_bps: the filled part's cost against the arrival mid, in basis points
-- of the filled quantity at that mid; positive is a cost for buys and sells alike. fee_bps: fees
-- in basis points of the filled notional. shortfall: the filled part's cost against the arrival
-- mid, plus fees, plus the opportunity cost of the part not filled by the order's last report at
-- the end mid (the instrument's last quote at or before that report), in the quote currency;
-- shortfall_bps: the same in basis points of the order's quantity at the arrival mid. Products of
-- two amounts are taken at 9 decimal places (BIGNUMERIC(38, 9)) so DuckDB's DECIMAL(38) holds them.
-- slippage, filled_at_arrival (filled quantity x arrival mid) and ordered_at_arrival (quantity x
-- arrival mid) are the money behind the ratios, for sums over many orders (venue_execution).
WITH submitted AS (
  SELECT order_id, account_id, strategy_id, instrument, side, quantity, event_time AS submit_time
  FROM trading.orders
  WHERE event_type = 'OrderSubmitted'
    AND event_time >= @day_start AND event_time < @day_end
    AND (@account IS NULL OR account_id = @account)
),
reports AS (
  SELECT
    order_id,
    ANY_VALUE(venue HAVING MIN sequence) AS venue,
    MAX(arrival_mid) AS arrival_mid,
    MIN(IF(execution_type = 'REJECTED', NULL, event_time)) AS accept_time,
    MAX(event_time) AS last_report_time,
    ANY_VALUE(execution_type HAVING MAX sequence) AS last_report
  FROM trading.executions
  WHERE event_time >= @day_start AND order_id IN (SELECT order_id FROM submitted)
  GROUP BY order_id
),
filled AS (
  SELECT
    order_id,
    COUNT(*) AS fills,
    SUM(quantity) AS filled_quantity,
    SUM(notional) AS notional,
    SUM(IFNULL(fee, 0)) AS fees,
    MIN(event_time) AS first_fill_time,
    MAX(event_time) AS last_fill_time
  FROM trading.fills
  WHERE event_time >= @day_start AND order_id IN (SELECT order_id FROM submitted)
  GROUP BY order_id
),
orders AS (
  SELECT
    s.*,
    r.venue, r.arrival_mid, r.accept_time, r.last_report_time, r.last_report,
    IFNULL(f.fills, 0) AS fills,
    IFNULL(f.filled_quantity, 0) AS filled_quantity,
    IFNULL(f.notional, 0) AS notional,
    IFNULL(f.fees, 0) AS fees,
    f.first_fill_time, f.last_fill_time,
    IF(s.side = 'BUY', 1, -1) AS sign
  FROM submitted AS s
  LEFT JOIN reports AS r USING (order_id)
  LEFT JOIN filled AS f USING (order_id)
),
-- The end mid: the last quote of the order's instrument at or before its last report.
ends AS (
  SELECT order_id, end_mid
  FROM (
    SELECT
      order_id,
      LAST_VALUE(mid IGNORE NULLS) OVER (
        PARTITION BY instrument ORDER BY at, is_order
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) AS end_mid
    FROM (
      SELECT instrument, event_time AS at, 0 AS is_order, mid, CAST(NULL AS STRING) AS order_id
      FROM trading.quotes
      WHERE event_time >= TIMESTAMP_SUB(@day_start, INTERVAL 1 DAY)
        AND event_time < TIMESTAMP_ADD(@day_end, INTERVAL 1 DAY)
        AND instrument IN (SELECT instrument FROM submitted)
      UNION ALL
      SELECT instrument, IFNULL(last_report_time, submit_time), 1, NULL, order_id FROM orders
    )
  )
  WHERE order_id IS NOT NULL
),
costs AS (
  SELECT
    o.*,
    e.end_mid,
    o.sign * (o.notional - CAST(o.filled_quantity AS BIGNUMERIC(38, 9))
      * CAST(o.arrival_mid AS BIGNUMERIC(38, 9))) AS slippage,
    CAST(o.filled_quantity AS BIGNUMERIC(38, 9))
      * CAST(o.arrival_mid AS BIGNUMERIC(38, 9)) AS filled_at_arrival,
    o.sign * (CAST(e.end_mid AS BIGNUMERIC(38, 9)) - CAST(o.arrival_mid AS BIGNUMERIC(38, 9)))
      * CAST(o.quantity - o.filled_quantity AS BIGNUMERIC(38, 9)) AS opportunity_cost,
    CAST(o.quantity AS BIGNUMERIC(38, 9))
      * CAST(o.arrival_mid AS BIGNUMERIC(38, 9)) AS ordered_at_arrival
  FROM orders AS o
  LEFT JOIN ends AS e USING (order_id)
)
SELECT
  order_id, account_id, strategy_id, instrument, side, venue,
  DATE(submit_time) AS day,
  IFNULL(last_report, 'NONE') AS last_report,
  quantity, filled_quantity, fills,
  SAFE_DIVIDE(CAST(filled_quantity AS FLOAT64), CAST(quantity AS FLOAT64)) AS fill_rate,
  submit_time, accept_time, first_fill_time, last_fill_time,
  TIMESTAMP_DIFF(accept_time, submit_time, MICROSECOND) / 1000 AS accept_ms,
  TIMESTAMP_DIFF(first_fill_time, submit_time, MICROSECOND) / 1000 AS first_fill_ms,
  TIMESTAMP_DIFF(last_fill_time, submit_time, MICROSECOND) / 1000 AS last_fill_ms,
  arrival_mid, end_mid, notional, fees, slippage, filled_at_arrival, ordered_at_arrival,
  SAFE_DIVIDE(CAST(slippage AS FLOAT64), CAST(filled_at_arrival AS FLOAT64)) * 10000
    AS slippage_bps,
  SAFE_DIVIDE(CAST(fees AS FLOAT64), CAST(notional AS FLOAT64)) * 10000 AS fee_bps,
  slippage + fees + opportunity_cost AS shortfall,
  SAFE_DIVIDE(CAST(slippage + fees + opportunity_cost AS FLOAT64),
    CAST(ordered_at_arrival AS FLOAT64)) * 10000 AS shortfall_bps
FROM costs
ORDER BY submit_time, order_id
