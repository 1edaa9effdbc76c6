using System.Net.Sockets;
using Nova.Workflow.TestServers;
using Npgsql;
using Xunit;

namespace Nova.Workflow.Postgres.Tests;

/// <summary>
/// A real PostgreSQL 15 from the installed binaries: initdb and postgres run as the non-root
/// <c>postgres</c> user in a temp dir, on 127.0.0.1 at a free port; removed after the tests.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private LocalPostgres? _server;

    public string ConnectionString => _server!.ConnectionString;

    public NpgsqlDataSource DataSource { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _server = await LocalPostgres.StartAsync();
        DataSource = NpgsqlDataSource.Create(ConnectionString);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await using var command = DataSource.CreateCommand("SELECT 1");
                await command.ExecuteScalarAsync();
                return;
            }
            catch (Exception ex) when ((ex is NpgsqlException or SocketException) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    public async Task DisposeAsync()
    {
        if (DataSource is not null)
        {
            await DataSource.DisposeAsync();
        }

        _server?.Dispose();
    }
}
