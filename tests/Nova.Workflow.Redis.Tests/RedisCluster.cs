using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Nova.Workflow.TestServers;
using StackExchange.Redis;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>A real 3-master Redis Cluster on 127.0.0.1 (cluster mode, joined with redis-cli), started for the tests.</summary>
public sealed class RedisCluster : IAsyncLifetime
{
    private readonly List<LocalRedis> _servers = [];

    public IConnectionMultiplexer Connection { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var ports = ClusterPorts(3);
        foreach (var port in ports)
        {
            _servers.Add(LocalRedis.Start(port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"));
        }

        foreach (var port in ports)
        {
            (await RedisServer.ConnectAsync($"127.0.0.1:{port}")).Dispose();
        }

        var create = new ProcessStartInfo("redis-cli") { RedirectStandardOutput = true, RedirectStandardError = true };
        create.ArgumentList.Add("--cluster");
        create.ArgumentList.Add("create");
        foreach (var port in ports)
        {
            create.ArgumentList.Add($"127.0.0.1:{port}");
        }

        create.ArgumentList.Add("--cluster-replicas");
        create.ArgumentList.Add("0");
        create.ArgumentList.Add("--cluster-yes");
        using (var cli = Process.Start(create)!)
        {
            var output = await cli.StandardOutput.ReadToEndAsync();
            await cli.WaitForExitAsync();
            if (cli.ExitCode != 0)
            {
                throw new InvalidOperationException("redis-cli --cluster create failed: " + output + await cli.StandardError.ReadToEndAsync());
            }
        }

        Connection = await RedisServer.ConnectAsync(string.Join(',', ports.Select(p => $"127.0.0.1:{p}")));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await AllSlotsServedAsync())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("The cluster did not reach cluster_state:ok.");
            }

            await Task.Delay(100);
        }
    }

    public async Task DisposeAsync()
    {
        if (Connection is not null)
        {
            await Connection.CloseAsync();
            Connection.Dispose();
        }

        foreach (var server in _servers)
        {
            server.Dispose();
        }
    }

    private async Task<bool> AllSlotsServedAsync()
    {
        foreach (var endpoint in Connection.GetEndPoints())
        {
            var info = (string?)await Connection.GetServer(endpoint).ExecuteAsync("CLUSTER", "INFO");
            if (info is null || !info.Contains("cluster_state:ok", StringComparison.Ordinal))
            {
                return false;
            }
        }

        return Connection.GetEndPoints().Length == 3;
    }

    // Cluster nodes also listen on port + 10000 (the cluster bus): pick ports where both are free.
    private static int[] ClusterPorts(int count)
    {
        var ports = new List<int>();
        var random = new Random();
        while (ports.Count < count)
        {
            var port = random.Next(20000, 29000);
            if (!ports.Contains(port) && IsFree(port) && IsFree(port + 10000))
            {
                ports.Add(port);
            }
        }

        return [.. ports];
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}

/// <summary>The conformance suite on a 3-master Redis Cluster: every script stays within one hash slot.</summary>
public sealed class RedisClusterConformanceTests(RedisCluster cluster) : Conformance.ConformanceTests, IClassFixture<RedisCluster>
{
    protected override ValueTask<Conformance.IStorageHandle> CreateStorageAsync() => new(new RedisStorageHandle(cluster.Connection, cluster: true));
}
