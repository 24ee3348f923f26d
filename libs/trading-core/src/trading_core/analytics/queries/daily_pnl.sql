-- Profit and loss per account, strategy and day, marked to market at each day's end: the daily
-- series behind the performance figures (win rate, drawdown, Sharpe, ...; analytics.performance).
-- @day_start TIMESTAMP: midnight (UTC) of the period's first day
-- @day_end TIMESTAMP: midnight after the period's last day
-- @account STRING NULL: one account, or NULL for every account
-- @strategy STRING NULL: one strategy, or NULL for every strategy
--
-- A book is what one strategy of an account holds of one instrument, built from its fills since
-- its first: its position (bought minus sold quantity) and its cash (what sales received minus
-- what purchases paid, minus fees). Its equity at a day's end is cash + position x mark; the
-- day's pnl is the change of its equity over the day: realized and unrealized together, fees
-- included. The mark: the mid of the instrument's last quote at or before the day's end (quotes
-- of the 7 days before the period count); without one, the price of the instrument's last fill.
-- A row for every day of the period for each account and strategy with fills before its end;
-- cumulative_pnl is the equity since the first fill, exposure the positions' value at the marks.
-- strategy_id is '' for fills of orders whose submit is not in the warehouse.
WITH strategies AS (
  SELECT order_id, ANY_VALUE(strategy_id) AS strategy_id
  FROM trading.orders
  WHERE event_type = 'OrderSubmitted'
  GROUP BY order_id
),
fills AS (
  SELECT
    f.account_id, IFNULL(s.strategy_id, '') AS strategy_id, f.instrument, f.event_time, f.price,
    -- before the period: one opening day, the eve of its first
    GREATEST(DATE(f.event_time), DATE_SUB(DATE(@day_start), INTERVAL 1 DAY)) AS day,
    IF(f.side = 'BUY', f.quantity, -f.quantity) AS quantity,
    IF(f.side = 'BUY', -f.notional, f.notional) - IFNULL(f.fee, 0) AS cash,
    IFNULL(f.fee, 0) AS fee,
    f.notional
  FROM trading.fills AS f
  LEFT JOIN strategies AS s USING (order_id)
  WHERE f.event_time < @day_end
    AND (@account IS NULL OR f.account_id = @account)
    AND (@strategy IS NULL OR s.strategy_id = @strategy)
),
days AS (
  SELECT day
  FROM UNNEST(GENERATE_DATE_ARRAY(
    DATE_SUB(DATE(@day_start), INTERVAL 1 DAY),
    DATE(TIMESTAMP_SUB(@day_end, INTERVAL 1 MICROSECOND))
  )) AS day
),
books AS (
  SELECT DISTINCT account_id, strategy_id, instrument FROM fills
),
flows AS (
  SELECT
    account_id, strategy_id, instrument, day,
    SUM(quantity) AS quantity, SUM(cash) AS cash, SUM(fee) AS fees, SUM(notional) AS notional,
    COUNT(*) AS fills
  FROM fills
  GROUP BY account_id, strategy_id, instrument, day
),
quote_marks AS (
  SELECT
    instrument,
    GREATEST(DATE(event_time), DATE_SUB(DATE(@day_start), INTERVAL 1 DAY)) AS day,
    ANY_VALUE(mid HAVING MAX event_time) AS mark
  FROM trading.quotes
  WHERE event_time >= TIMESTAMP_SUB(@day_start, INTERVAL 7 DAY) AND event_time < @day_end
    AND instrument IN (SELECT instrument FROM books)
  GROUP BY instrument, day
),
fill_marks AS (
  SELECT instrument, day, ANY_VALUE(price HAVING MAX event_time) AS mark
  FROM fills
  GROUP BY instrument, day
),
grid AS (
  SELECT
    b.account_id, b.strategy_id, b.instrument, d.day,
    IFNULL(fl.quantity, 0) AS day_quantity,
    IFNULL(fl.cash, 0) AS day_cash,
    IFNULL(fl.fees, 0) AS fees,
    IFNULL(fl.notional, 0) AS notional,
    IFNULL(fl.fills, 0) AS fills,
    qm.mark AS quote_mark,
    fm.mark AS fill_mark
  FROM books AS b
  CROSS JOIN days AS d
  LEFT JOIN flows AS fl
    ON fl.account_id = b.account_id AND fl.strategy_id = b.strategy_id
    AND fl.instrument = b.instrument AND fl.day = d.day
  LEFT JOIN quote_marks AS qm ON qm.instrument = b.instrument AND qm.day = d.day
  LEFT JOIN fill_marks AS fm ON fm.instrument = b.instrument AND fm.day = d.day
),
held AS (
  SELECT
    *,
    SUM(day_quantity) OVER book AS position,
    SUM(day_cash) OVER book AS cash,
    COALESCE(
      LAST_VALUE(quote_mark IGNORE NULLS) OVER book,
      LAST_VALUE(fill_mark IGNORE NULLS) OVER book
    ) AS mark
  FROM grid
  WINDOW book AS (
    PARTITION BY account_id, strategy_id, instrument ORDER BY day
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
),
valued AS (
  SELECT
    *,
    IF(position = 0, 0, CAST(position AS BIGNUMERIC(38, 9)) * CAST(mark AS BIGNUMERIC(38, 9)))
      AS exposure
  FROM held
),
daily AS (
  SELECT
    *,
    cash + exposure AS equity,
    cash + exposure - LAG(cash + exposure) OVER (
      PARTITION BY account_id, strategy_id, instrument ORDER BY day
    ) AS pnl
  FROM valued
)
SELECT
  account_id,
  strategy_id,
  day,
  SUM(pnl) AS pnl,
  SUM(fees) AS fees,
  SUM(fills) AS fills,
  SUM(notional) AS notional,
  SUM(exposure) AS exposure,
  SUM(equity) AS cumulative_pnl
FROM daily
WHERE day >= DATE(@day_start)
GROUP BY account_id, strategy_id, day
ORDER BY account_id, strategy_id, day
