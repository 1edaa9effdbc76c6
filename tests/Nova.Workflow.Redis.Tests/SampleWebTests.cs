using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Nova.Workflow.Conformance;
using Xunit;

namespace Nova.Workflow.Redis.Tests;

/// <summary>The web API sample and the worker sample as two processes on one Redis.</summary>
[Collection(ProcessTests.Name)]
public sealed class SampleWebTests(RedisServer server) : IClassFixture<RedisServer>
{
    [Fact]
    public async Task Post_returns_202_with_the_id_get_shows_status_and_events_stream_as_sse_until_the_end()
    {
        var prefix = "web" + Guid.NewGuid().ToString("N")[..6];
        var port = RedisServer.FreePort();
        var environment = new Dictionary<string, string>
        {
            ["Nova__Storage"] = "Redis",
            ["Nova__Prefix"] = prefix,
            ["ConnectionStrings__Redis"] = $"127.0.0.1:{server.Port}",
            ["Sample__ApiKey"] = "test-key",
        };
        using var web = SampleProcess.Start("Nova.Workflow.Samples.Web", environment, "--urls", $"http://127.0.0.1:{port}");
        using var worker = SampleProcess.Start("Nova.Workflow.Samples.Worker", environment);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        http.DefaultRequestHeaders.Add("X-Api-Key", "test-key");
        await Eventually.TrueAsync(
            async () =>
            {
                try
                {
                    return (await http.GetAsync($"/executions/{Guid.NewGuid()}")).StatusCode == HttpStatusCode.NotFound;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            },
            "the web API to answer",
            TimeSpan.FromSeconds(60));

        using (var anonymous = new HttpClient { BaseAddress = http.BaseAddress })
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/workflows/report", null)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsync("/workflows/nope", null)).StatusCode);
        var started = await http.PostAsJsonAsync("/workflows/report", new { month = "2026-11" });
        Assert.Equal(HttpStatusCode.Accepted, started.StatusCode);
        var id = (await started.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        Assert.Equal($"/executions/{id}", started.Headers.Location!.ToString());

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/executions/{id}/events");
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var types = new List<string>();
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                types.Add(line["event: ".Length..]);
            }
        }

        Assert.Equal(EventTypes.ExecutionSucceeded, types[^1]);
        var snapshot = await http.GetFromJsonAsync<JsonElement>($"/executions/{id}", JsonSerializerOptions.Web);
        Assert.Equal("Succeeded", snapshot.GetProperty("status").GetString());
        Assert.Equal(4, snapshot.GetProperty("nodes").GetArrayLength());
    }
}
