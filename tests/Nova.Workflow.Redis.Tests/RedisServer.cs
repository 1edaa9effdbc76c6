using System.Net;
using System.Net.Sockets;
using Nova.Workflow.TestServers;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>A real redis-server on 127.0.0.1 at a free port in a temp dir, started for the tests and removed after.</summary>
public sealed class RedisServer : IAsyncLifetime
{
    private LocalRedis? _server;

    public int Port => _server!.Port;

    public IConnectionMultiplexer Connection { get; private set; } = null!;

    public string ConnectionString => _server!.ConnectionString;

    public async Task InitializeAsync()
    {
        _server = LocalRedis.Start();
        Connection = await ConnectAsync(ConnectionString);
    }

    public async Task DisposeAsync()
    {
        if (Connection is not null)
        {
            await Connection.CloseAsync();
            Connection.Dispose();
        }

        _server?.Dispose();
    }

    internal static async Task<IConnectionMultiplexer> ConnectAsync(string configuration)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                var connection = await ConnectionMultiplexer.ConnectAsync(configuration + ",abortConnect=true,connectTimeout=2000");
                await connection.GetDatabase().PingAsync();
                return connection;
            }
            catch (RedisConnectionException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
