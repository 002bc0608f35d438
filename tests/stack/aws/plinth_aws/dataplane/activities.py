"""Scaling activities, as `DescribeScalingActivities` reports them.

moto 5.2.5 answers `DescribeScalingActivities` with an empty list whatever happened. The data
plane records what it does to a group (instances launched and terminated, unhealthy instances
replaced, scaling policies executed) here, with AWS's wording, and the patched response lists
them newest first, so an operator can say *why* a group is not healthy the way it would on AWS.
https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DescribeScalingActivities.html
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from moto.autoscaling.models import Activity
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

# AWS keeps six weeks of activities; a test world needs far fewer per group.
KEEP_PER_GROUP = 200


class Activities:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_group: dict[tuple[str, str, str], list[Activity]] = {}

    def record(
        self,
        account: str,
        region: str,
        group,
        description: str,
        cause: str,
        status_code: str = "Successful",
        status_message: str = "",
    ) -> Activity:
        """Record one activity of `group` (moto's FakeAutoScalingGroup); returns it so its
        status can be updated later (`finish`)."""
        activity = Activity(description, cause, group, status_code=status_code)
        activity.status_message = status_message
        activity.progress = 100 if status_code in ("Successful", "Failed", "Cancelled") else 0
        with self._lock:
            entries = self._by_group.setdefault((account, region, group.name), [])
            entries.append(activity)
            del entries[:-KEEP_PER_GROUP]
        return activity

    def finish(self, activity: Activity, status_code: str, status_message: str = "") -> None:
        activity.status_code = status_code
        activity.status_message = status_message
        activity.progress = 100
        activity.end_time = datetime.now(timezone.utc)

    def of(self, account: str, region: str, group_name: str | None) -> list[Activity]:
        """Newest first; every group of the region when `group_name` is None."""
        with self._lock:
            if group_name is not None:
                entries = list(self._by_group.get((account, region, group_name), []))
            else:
                entries = [
                    activity
                    for (acct, reg, _), group in self._by_group.items()
                    if acct == account and reg == region
                    for activity in group
                ]
        return sorted(entries, key=lambda a: a.start_time, reverse=True)

    def mentions(self, account: str, region: str, group_name: str, text: str) -> bool:
        """Whether an activity of the group already names `text` (an instance id), so a launch
        explained by a policy is not recorded a second time as a plain capacity change."""
        with self._lock:
            entries = list(self._by_group.get((account, region, group_name), []))
        return any(text in a.description for a in entries)

    def forget_group(self, account: str, region: str, group_name: str) -> None:
        with self._lock:
            self._by_group.pop((account, region, group_name), None)

    def reset(self) -> None:
        with self._lock:
            self._by_group.clear()


def install(activities: Activities) -> None:
    """Answer DescribeScalingActivities from `activities` (MaxRecords and NextToken honoured)."""

    def describe_scaling_activities(self) -> ActionResult:
        group_name = self._get_param("AutoScalingGroupName")
        wanted = set(self._get_param("ActivityIds") or [])
        entries = activities.of(self.current_account, self.region, group_name)
        if wanted:
            entries = [a for a in entries if a.activity_id in wanted]
        limit = int(self._get_param("MaxRecords") or 100)
        start = int(self._get_param("NextToken") or 0)
        page = entries[start : start + limit]
        result: dict = {
            "Activities": [
                {
                    "ActivityId": a.activity_id,
                    "AutoScalingGroupName": a.auto_scaling_group_name,
                    "Description": a.description,
                    "Cause": a.cause,
                    "StartTime": a.start_time,
                    "EndTime": a.end_time if a.status_code != "InProgress" else None,
                    "StatusCode": a.status_code,
                    "StatusMessage": getattr(a, "status_message", "") or None,
                    "Progress": a.progress,
                }
                for a in page
            ]
        }
        if start + limit < len(entries):
            result["NextToken"] = str(start + limit)
        return ActionResult(result)

    AutoScalingResponse.describe_scaling_activities = describe_scaling_activities
