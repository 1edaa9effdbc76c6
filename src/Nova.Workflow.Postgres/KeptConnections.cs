using System.Data;
using System.Data.Common;
using Npgsql;

namespace Nova.Workflow.Postgres;

/// <summary>
/// A few open connections the store keeps between its own transactions. Npgsql resets a connection that went back to its
/// pool when it is next used: the reset statements run ahead of the next command, and they cost about a sixth of a chain
/// hop here. The store's statements leave nothing in a session (no settings, no session locks, no LISTEN), so a connection
/// whose work ended cleanly is kept for the next transaction instead. A connection whose work threw (and with it every
/// kept one), one that is no longer open, and one that sat unused longer than <see cref="IdleFor"/> go back to the pool: a
/// timer gives the idle ones back even when
/// nothing asks for a connection, so a quiet process holds none for long. The statements these connections prepare stay
/// prepared either way (Npgsql keeps them with the physical connection).
/// </summary>
internal sealed class KeptConnections : IAsyncDisposable, IDisposable
{
    /// <summary>Longer unused than this, a kept connection goes back to the pool, which closes idle ones in its own time.</summary>
    internal static readonly TimeSpan IdleFor = TimeSpan.FromSeconds(30);

    private readonly NpgsqlDataSource _dataSource;
    private readonly TimeProvider _time;
    private readonly int _capacity;
    private readonly Lock _gate = new();

    // The kept connections, the most recently given back last: taken from the end, given up for idleness from the start.
    private readonly List<(NpgsqlConnection Connection, long Since)> _idle = [];
    private readonly ITimer? _pruning;
    private bool _disposed;

    public KeptConnections(NpgsqlDataSource dataSource, TimeProvider time, int capacity)
    {
        _dataSource = dataSource;
        _time = time;
        _capacity = capacity;
        _pruning = capacity > 0 ? time.CreateTimer(static k => ((KeptConnections)k!).Prune(), this, IdleFor, IdleFor) : null;
    }

    /// <summary>
    /// Whether the data source multiplexes commands over its connections. Otherwise the provider prepares its statements
    /// explicitly: Npgsql keeps a prepared statement with its physical connection, and preparing one the connection has
    /// already sends nothing, so only a connection's first run of a statement pays a round trip and each later run skips
    /// PostgreSQL's parse and plan. A multiplexing data source takes no explicit preparation and no LISTEN wait, and shares
    /// its connections by itself: there nothing is prepared or kept, and idle workers poll.
    /// </summary>
    public static bool Multiplexes(NpgsqlDataSource dataSource) => new NpgsqlConnectionStringBuilder(dataSource.ConnectionString).Multiplexing;

    /// <summary>Prepares the batch's statements on its connection (see <see cref="Multiplexes"/>); nothing when multiplexing.</summary>
    public static Task PrepareAsync(DbBatch batch, bool multiplexing, CancellationToken cancellationToken) =>
        multiplexing ? Task.CompletedTask : batch.PrepareAsync(cancellationToken);

    /// <summary>Prepares the command's statement on its connection (see <see cref="Multiplexes"/>); nothing when multiplexing.</summary>
    public static Task PrepareAsync(DbCommand command, bool multiplexing, CancellationToken cancellationToken) =>
        multiplexing ? Task.CompletedTask : command.PrepareAsync(cancellationToken);

    /// <summary>Runs <paramref name="work"/> on a kept connection (or a new one), keeping the connection after if it succeeds.</summary>
    public async Task<T> RunAsync<T>(Func<NpgsqlConnection, Task<T>> work, CancellationToken cancellationToken)
    {
        var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        T result;
        try
        {
            result = await work(connection).ConfigureAwait(false);
        }
        catch
        {
            await DiscardAsync(connection).ConfigureAwait(false);
            throw;
        }

        await ReturnAsync(connection).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// Closes a connection whose work threw, and gives every kept one back to the pool with it: what broke one (a server
    /// restart, a network failure) has most likely broken them all, and each would fail one more transaction to show it.
    /// </summary>
    public async ValueTask DiscardAsync(NpgsqlConnection connection)
    {
        List<NpgsqlConnection> kept;
        lock (_gate)
        {
            kept = [.. _idle.Select(k => k.Connection)];
            _idle.Clear();
        }

        await connection.DisposeAsync().ConfigureAwait(false);
        foreach (var other in kept)
        {
            await other.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>A kept connection, the most recently used first, or a new one from the pool.</summary>
    public async ValueTask<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            (NpgsqlConnection Connection, long Since) kept;
            lock (_gate)
            {
                if (_idle.Count == 0)
                {
                    break;
                }

                kept = _idle[^1];
                _idle.RemoveAt(_idle.Count - 1);
            }

            if (kept.Connection.FullState == ConnectionState.Open && _time.GetElapsedTime(kept.Since) < IdleFor)
            {
                return kept.Connection;
            }

            await kept.Connection.DisposeAsync().ConfigureAwait(false);
        }

        return await _dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes back a connection whose work ended cleanly (its transaction committed or rolled back): kept while there is room,
    /// else returned to the pool.
    /// </summary>
    public ValueTask ReturnAsync(NpgsqlConnection connection)
    {
        if (connection.FullState == ConnectionState.Open)
        {
            lock (_gate)
            {
                if (!_disposed && _idle.Count < _capacity)
                {
                    _idle.Add((connection, _time.GetTimestamp()));
                    return ValueTask.CompletedTask;
                }
            }
        }

        return connection.DisposeAsync();
    }

    /// <summary>The number of connections kept now (for tests).</summary>
    internal int Count
    {
        get
        {
            lock (_gate)
            {
                return _idle.Count;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var connection in TakeAll())
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    public void Dispose()
    {
        foreach (var connection in TakeAll())
        {
            connection.Dispose();
        }
    }

    private NpgsqlConnection[] TakeAll()
    {
        _pruning?.Dispose();
        lock (_gate)
        {
            _disposed = true;
            NpgsqlConnection[] kept = [.. _idle.Select(k => k.Connection)];
            _idle.Clear();
            return kept;
        }
    }

    /// <summary>Gives the connections unused for <see cref="IdleFor"/> back to the pool (the oldest are first in the list).</summary>
    private void Prune()
    {
        List<NpgsqlConnection>? stale = null;
        lock (_gate)
        {
            while (_idle.Count > 0 && _time.GetElapsedTime(_idle[0].Since) >= IdleFor)
            {
                (stale ??= []).Add(_idle[0].Connection);
                _idle.RemoveAt(0);
            }
        }

        foreach (var connection in stale ?? [])
        {
            connection.Dispose();
        }
    }
}
