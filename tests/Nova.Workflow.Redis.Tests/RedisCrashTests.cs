using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Nova.Workflow.Conformance;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>
/// Three worker processes (the sample worker host) on one Redis; 1,000 executions of a 10-node DAG whose
/// handler logs every run; one worker is killed with SIGKILL mid-run and started again.
/// </summary>
[Collection(ProcessTests.Name)]
public sealed class RedisCrashTests(RedisServer server) : IClassFixture<RedisServer>
{
    private const int Executions = 1000;
    private const int Concurrency = 16;

    [Fact]
    public async Task Kill9_of_a_worker_mid_run_loses_nothing_and_commits_each_node_exactly_once()
    {
        var prefix = "crash" + Guid.NewGuid().ToString("N")[..6];
        var log = Path.Combine(Path.GetTempPath(), prefix + ".log");
        Dictionary<string, string> Environment(string name) => new()
        {
            ["Nova__Storage"] = "Redis",
            ["Nova__Prefix"] = prefix,
            ["Nova__Concurrency"] = Concurrency.ToString(CultureInfo.InvariantCulture),
            ["ConnectionStrings__Redis"] = $"127.0.0.1:{server.Port}",
            ["Nova__Options__LeaseDuration"] = "00:00:03",
            ["Nova__Options__HeartbeatInterval"] = "00:00:01",
            ["Nova__Options__SweepInterval"] = "00:00:01",
            ["Nova__Options__WorkerId"] = name,
            ["NOVA_CHAOS_LOG"] = log,
            ["NOVA_WORKER_NAME"] = name,
        };

        var workers = new List<SampleProcess> { SampleProcess.Start("Nova.Workflow.Samples.Worker", Environment("w1")), SampleProcess.Start("Nova.Workflow.Samples.Worker", Environment("w2")), SampleProcess.Start("Nova.Workflow.Samples.Worker", Environment("w3")) };
        try
        {
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Services.AddLogging();
            builder.Services.AddSingleton(server.Connection);
            builder.Services.AddNovaWorkflows(nova => Samples.SampleWorkflows.AddSampleWorkflows(nova.UseRedis(o => o.Prefix = prefix)));
            using var client = builder.Build();
            await client.StartAsync();
            var nova = client.Services.GetRequiredService<IWorkflowClient>();
            var ids = new List<Guid>();
            for (var batch = 0; batch < Executions / 100; batch++)
            {
                ids.AddRange(await Task.WhenAll(Enumerable.Range(0, 100).Select(_ => nova.StartAsync("chaos"))));
            }

            // Kill w2 with SIGKILL once a good share of the work is done, then start it again.
            await Eventually.TrueAsync(() => Lines(log).Length >= Executions * 10 / 4, "a quarter of the node runs", TimeSpan.FromSeconds(120));
            workers[1].Kill9();
            workers.Add(SampleProcess.Start("Nova.Workflow.Samples.Worker", Environment("w2-restarted")));

            var pending = new HashSet<Guid>(ids);
            await Eventually.TrueAsync(
                async () =>
                {
                    foreach (var id in pending.ToList())
                    {
                        if ((await nova.GetAsync(id)).IsFinished)
                        {
                            pending.Remove(id);
                        }
                    }

                    return pending.Count == 0;
                },
                "every execution to finish",
                TimeSpan.FromSeconds(180));

            var lost = 0;
            foreach (var id in ids)
            {
                var snapshot = await nova.GetAsync(id);
                Assert.Equal(ExecutionStatus.Succeeded, snapshot.Status);
                var history = await nova.GetHistoryAsync(id);
                lost += history.Count(r => r.Status == NodeRunStatus.Lost);
                var committed = history.Where(r => r.Status == NodeRunStatus.Succeeded).GroupBy(r => r.NodeId).ToList();
                Assert.Equal(10, committed.Count);
                Assert.All(committed, g => Assert.Single(g));
            }

            // The killed worker held nodes when it died; they were taken over after their leases lapsed.
            Assert.True(lost > 0, "no attempt of the killed worker was recovered");

            // Duplicate handler runs happen only for nodes the killed worker held when it died.
            var runs = Lines(log).Select(l => l.Split(',')).GroupBy(p => (p[0], p[1])).ToList();
            Assert.Equal(Executions * 10, runs.Count);
            var duplicated = runs.Where(g => g.Count() > 1).ToList();
            Assert.All(duplicated, g => Assert.Contains(g, p => p[3] == "w2"));
            Assert.True(duplicated.Count <= Concurrency, $"{duplicated.Count} nodes ran twice; w2 could hold at most {Concurrency}");
            await client.StopAsync();
        }
        finally
        {
            foreach (var worker in workers)
            {
                worker.Dispose();
            }

            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(log)!, Path.GetFileName(log) + ".*"))
            {
                File.Delete(file);
            }
        }
    }

    // Every worker process writes its own file (<log>.<worker>); a run is a complete line.
    private static string[] Lines(string log) =>
    [
        .. Directory.GetFiles(Path.GetDirectoryName(log)!, Path.GetFileName(log) + ".*").SelectMany(path =>
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var reader = new StreamReader(stream);
            return reader.ReadToEnd().Split('\n').SkipLast(1);
        }),
    ];
}
